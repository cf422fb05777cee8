package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// Notifications: a replica that finishes a call other replicas may be waiting for publishes the
// call's key on the channel "<prefix>:done" (from the unlock script). Each Store listens on it
// with one subscription and wakes its local waiters for that key. A notification can be missed
// (Redis restarting, the subscription being renewed), so waiters also poll.

// channel is the Store's notification channel. Channels are not keys: classic PUBLISH reaches
// every node of a cluster.
func (s *Store) channel() string { return s.opts.Prefix + ":done" }

// listen keeps the subscription while the Store is open, renewing it after a failure.
func (s *Store) listen(ctx context.Context) {
	defer s.done.Done()
	for ctx.Err() == nil {
		if c := s.conn(ctx); c != nil {
			_ = c.Receive(ctx, c.B().Subscribe().Channel(s.channel()).Build(), func(m rueidis.PubSubMessage) {
				s.notify(m.Message)
			})
		}
		select {
		case <-ctx.Done():
		case <-time.After(s.opts.HealthInterval):
		}
	}
}

// await registers interest in notifications for keys: the channel receives a value (and
// keeps at most one) each time one of them is published. Call the returned function to
// unregister.
func (s *Store) await(keys []string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	for _, k := range keys {
		m := s.waiters[k]
		if m == nil {
			m = make(map[chan struct{}]struct{})
			s.waiters[k] = m
		}
		m[ch] = struct{}{}
	}
	s.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, k := range keys {
				delete(s.waiters[k], ch)
				if len(s.waiters[k]) == 0 {
					delete(s.waiters, k)
				}
			}
		})
	}
}

// notify wakes the waiters for key.
func (s *Store) notify(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.waiters[key] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
