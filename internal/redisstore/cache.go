package redisstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/mdegraph/mdegraph/internal/loaders"
)

// Codec turns one kind of answer into bytes and back.
type Codec[V any] interface {
	Marshal(v V) ([]byte, error)
	Unmarshal(b []byte) (V, error)
}

// JSON is the Codec of encoding/json: Defender's answers are JSON to begin with, and their
// types decode what they encode.
type JSON[V any] struct{}

// Marshal encodes v.
func (JSON[V]) Marshal(v V) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes b.
func (JSON[V]) Unmarshal(b []byte) (V, error) {
	var v V
	err := json.Unmarshal(b, &v)
	return v, err
}

var (
	_ loaders.Cache[int]         = (*Cache[int])(nil)
	_ loaders.ExpiringCache[int] = (*Cache[int])(nil)
)

// Cache is a loaders.Cache of one kind of answer shared by every replica through Redis, with
// a small in-process layer in front. Keys are the Fetcher's (the identity is in them), hashed
// (SHA-256) under the prefix and the kind: "{prefix:c:kind:hash}". An entry is kept for the ttl
// Set gives (Redis expires it, PX) and encoded as "fresh_ms|fetched_ms|expires_ms|notfound|"
// followed by the answer (Codec), so the sharing script can read its freshness.
//
// The in-process layer keeps an entry only while it is fresh: an entry fresh here is the same
// entry fresh in Redis (a replica writes a key only after it found no fresh entry), so it is
// served without a round trip, and anything older (a stale fallback, a key another replica may
// have refreshed or dropped) is read from Redis. While Redis is unreachable the layer keeps
// what this replica fetches for its full ttl and serves it alone; nothing is served past its
// ttl. Freshness is compared with each replica's own clock: keep the clocks in sync (NTP).
type Cache[V any] struct {
	store *Store
	kind  string
	codec Codec[V]
	local *loaders.MemoryCache[V]
}

// NewCache returns the Cache of kind (a name unique to the kind of answer, part of its keys:
// change it when the encoding changes) with an in-process layer of localEntries.
func NewCache[V any](s *Store, kind string, localEntries int, codec Codec[V]) *Cache[V] {
	return &Cache[V]{store: s, kind: kind, codec: codec, local: loaders.NewMemoryCache[V](localEntries)}
}

// tag is the hash tag of key's entry, lock and done marker.
func (c *Cache[V]) tag(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "c:" + c.kind + ":" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// entryKey is the Redis key of key's entry.
func (c *Cache[V]) entryKey(key string) string { return c.store.key(c.tag(key), "") }

// keys are the entry, lock and done keys of key, in the order share.lua reads them.
func (c *Cache[V]) keys(key string) []string {
	entry := c.entryKey(key)
	return []string{entry, entry + ":lock", entry + ":done"}
}

// Get returns the entry for key, fresh or not, from the in-process layer when it is fresh
// there, else from Redis; while Redis is unreachable, from the in-process layer alone.
func (c *Cache[V]) Get(ctx context.Context, key string) (loaders.Entry[V], bool) {
	now := time.Now()
	e, ok := c.local.Get(ctx, key)
	if ok && e.Fresh(now) {
		return e, true
	}
	if re, _, rok, err := c.read(ctx, key, now); err == nil {
		return re, rok
	}
	return e, ok
}

// GetUntil is Get, and when the entry expires (for the upstream-call estimate).
func (c *Cache[V]) GetUntil(ctx context.Context, key string) (loaders.Entry[V], time.Time, bool) {
	now := time.Now()
	e, until, ok := c.local.GetUntil(ctx, key)
	if ok && e.Fresh(now) {
		return e, until, true
	}
	if re, runtil, rok, err := c.read(ctx, key, now); err == nil {
		return re, runtil, rok
	}
	return e, until, ok
}

// read gets key's entry from Redis, and keeps it in process while it is fresh. A missing or
// unreadable entry is a miss; err is set only when Redis could not be asked.
func (c *Cache[V]) read(ctx context.Context, key string, now time.Time) (loaders.Entry[V], time.Time, bool, error) {
	k := c.entryKey(key)
	res, err := c.store.do(ctx, "cache.get", func(cl rueidis.Client) rueidis.Completed { return cl.B().Get().Key(k).Build() })
	if err != nil {
		c.store.opts.Observer.Fallback("cache")
		return loaders.Entry[V]{}, time.Time{}, false, err
	}
	b, err := res.AsBytes()
	if err != nil { // nil: no entry
		return loaders.Entry[V]{}, time.Time{}, false, nil
	}
	e, expires, err := c.decode(b)
	if err != nil {
		return loaders.Entry[V]{}, time.Time{}, false, nil
	}
	if e.Fresh(now) {
		c.local.Set(ctx, key, e, min(time.Until(expires), time.Until(e.FreshUntil)))
	}
	return e, expires, true, nil
}

// Set keeps e for ttl in Redis, and in process while it is fresh; a ttl of zero or less
// forgets key. While Redis is unreachable it keeps e in process for the whole ttl.
func (c *Cache[V]) Set(ctx context.Context, key string, e loaders.Entry[V], ttl time.Duration) {
	now := time.Now()
	k := c.entryKey(key)
	if ttl <= 0 {
		c.local.Set(ctx, key, e, 0)
		if _, err := c.store.do(ctx, "cache.del", func(cl rueidis.Client) rueidis.Completed { return cl.B().Del().Key(k).Build() }); err != nil {
			c.store.opts.Observer.Fallback("cache")
		}
		return
	}
	b, err := c.encode(e, now.Add(ttl))
	if err == nil {
		_, err = c.store.do(ctx, "cache.set", func(cl rueidis.Client) rueidis.Completed {
			return cl.B().Set().Key(k).Value(rueidis.BinaryString(b)).PxMilliseconds(max(ttl.Milliseconds(), 1)).Build()
		})
	}
	if err != nil {
		c.store.opts.Observer.Fallback("cache")
		c.local.Set(ctx, key, e, ttl)
		return
	}
	c.local.Set(ctx, key, e, min(ttl, time.Until(e.FreshUntil)))
}

func (c *Cache[V]) encode(e loaders.Entry[V], expires time.Time) ([]byte, error) {
	nf := "0"
	var payload []byte
	if e.NotFound {
		nf = "1"
	} else {
		var err error
		if payload, err = c.codec.Marshal(e.Value); err != nil {
			return nil, fmt.Errorf("redisstore: encode %s: %w", c.kind, err)
		}
	}
	head := strconv.FormatInt(e.FreshUntil.UnixMilli(), 10) + "|" + strconv.FormatInt(e.Fetched.UnixMilli(), 10) + "|" +
		strconv.FormatInt(expires.UnixMilli(), 10) + "|" + nf + "|"
	return append([]byte(head), payload...), nil
}

var errBadEntry = errors.New("redisstore: unreadable cache entry")

func (c *Cache[V]) decode(b []byte) (loaders.Entry[V], time.Time, error) {
	var nums [4]int64
	for i := range nums {
		field, rest, ok := bytes.Cut(b, []byte{'|'})
		if !ok {
			return loaders.Entry[V]{}, time.Time{}, errBadEntry
		}
		n, err := strconv.ParseInt(string(field), 10, 64)
		if err != nil {
			return loaders.Entry[V]{}, time.Time{}, errBadEntry
		}
		nums[i], b = n, rest
	}
	e := loaders.Entry[V]{FreshUntil: time.UnixMilli(nums[0]), Fetched: time.UnixMilli(nums[1]), NotFound: nums[3] == 1}
	if !e.NotFound {
		v, err := c.codec.Unmarshal(b)
		if err != nil {
			return loaders.Entry[V]{}, time.Time{}, fmt.Errorf("redisstore: decode %s: %w", c.kind, err)
		}
		e.Value = v
	}
	return e, time.UnixMilli(nums[2]), nil
}
