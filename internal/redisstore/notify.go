package redisstore

import (
	"context"
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
		if c := s.conn(); c != nil {
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

// await registers interest in notifications for key: the channel receives one value (and
// keeps at most one) each time key is published. Call the returned function to unregister.
func (s *Store) await(key string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	m := s.waiters[key]
	if m == nil {
		m = make(map[chan struct{}]struct{})
		s.waiters[key] = m
	}
	m[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.waiters[key], ch)
		if len(s.waiters[key]) == 0 {
			delete(s.waiters, key)
		}
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
