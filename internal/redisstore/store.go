// Package redisstore shares the service's upstream quota, 429 pauses, answer cache and calls
// in flight between replicas through Redis, behind the interfaces their users define:
// Limiter is a defender.Limiter (and reports quota.FamilyStatus like quota.Set), Cache is a
// loaders.Cache and Sharing a loaders.Sharing.
//
// Everything that must be atomic is one Lua script (the .lua files beside this one, run by
// SHA with EVALSHA, sent again with EVAL when the server does not know it), and every key one
// script touches carries the same hash tag, {prefix:...}, so the scripts run unchanged on Redis
// Cluster and on managed services that cluster (Azure Cache for Redis). The scripts use only
// data commands, TIME and PUBLISH: nothing a managed service refuses (no CONFIG, DEBUG, KEYS,
// SCAN). TIME inside a script that writes needs effects replication: the default from Redis 5,
// the only mode from Redis 7.
//
// When Redis cannot be reached, nothing fails because of it: the Store marks itself degraded
// (one log line, a gauge), the Limiter falls back to a local budget (the limits divided by the
// number of replicas), the Cache serves from its in-process layer and Sharing shares within the
// process only; a health check brings the shared state back when Redis answers again.
package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracer makes the spans of Redis scripts; it does nothing until a tracer provider is set.
var tracer = otel.Tracer("github.com/mdegraph/mdegraph/internal/redisstore")

// Observer learns what the Store does, for metrics. Implementations must be safe for
// concurrent use.
type Observer interface {
	// RoundTrip is one command, script or pipeline sent to Redis (op names it: "limiter.take",
	// "cache.get", ...), with its error (nil when Redis answered).
	RoundTrip(op string, d time.Duration, err error)
	// Degraded reports each change: true when Redis became unreachable, false when it is back.
	Degraded(degraded bool)
	// Fallback counts one operation done locally because Redis was unreachable: "quota",
	// "cache", "sharing".
	Fallback(what string)
	// Share is one key another replica was already fetching (kind is the Sharing's): outcome
	// "shared" (its answer was used), "cached" (it had just been cached), "took_over" (the
	// other replica failed, died or timed out: this one called); waited is the time spent
	// waiting for it.
	Share(kind, outcome string, waited time.Duration)
}

type nopObserver struct{}

func (nopObserver) RoundTrip(string, time.Duration, error) {}
func (nopObserver) Degraded(bool)                          {}
func (nopObserver) Fallback(string)                        {}
func (nopObserver) Share(string, string, time.Duration)    {}

// Options configure Open.
type Options struct {
	// URL is redis://[user:password@]host:port[/db] or rediss:// for TLS (REDIS_URL). It may
	// carry a password: it is never logged, only Where is.
	URL string
	// Prefix starts every key and channel (REDIS_PREFIX), so that several deployments can
	// share one Redis. It must not contain braces (they delimit hash tags) or spaces.
	Prefix string
	// Timeout bounds dialing and each command (REDIS_TIMEOUT; default 1s).
	Timeout time.Duration
	// StartDegraded, when Redis cannot be reached at start, makes Open return a degraded
	// Store that connects later (REDIS_FALLBACK=local) instead of an error.
	StartDegraded bool
	// HealthInterval is how often Redis is checked with PING (default 1s).
	HealthInterval time.Duration
	Logger         *slog.Logger
	Observer       Observer
}

// Store is a connection to Redis shared by the adapters, with its health: it is either
// shared (Redis answers) or degraded (it does not; the adapters work locally). It is safe for
// concurrent use.
type Store struct {
	opts   Options
	copt   rueidis.ClientOption
	where  string
	client atomic.Pointer[rueidis.Client] // nil until the first connection

	degraded      atomic.Bool
	mu            sync.Mutex
	degradedSince time.Time
	onRecover     []func(ctx context.Context, lost bool) error // called, in order, when Redis is back
	epoch         string                                       // the value of the epoch key when last connected
	lost          bool                                         // Redis lost its data while degraded: not yet told to onRecover
	waiters       map[string]map[chan struct{}]struct{}

	stop context.CancelFunc
	done sync.WaitGroup
}

// Open connects to Redis and starts the health check and the notification listener. When
// Redis cannot be reached it returns an error naming where it tried (never the password),
// unless StartDegraded is set: then the Store starts degraded and connects when it can.
// Close releases it.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := CheckPrefix(opts.Prefix); err != nil {
		return nil, err
	}
	copt, err := rueidis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL %s: %w", Where(opts.URL), err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	copt.Dialer.Timeout = opts.Timeout
	copt.ConnWriteTimeout = opts.Timeout
	copt.DisableCache = true // answers are cached in process by Cache, which needs no CLIENT TRACKING
	copt.DisableRetry = true // a failure degrades at once rather than retrying until the caller's deadline
	copt.ClientName = "mdegraph"
	s := &Store{opts: opts, copt: copt, where: Where(opts.URL), waiters: make(map[string]map[chan struct{}]struct{})}
	err = s.connect(ctx)
	if err == nil {
		_, err = s.checkEpoch(ctx)
	}
	if err != nil {
		if !opts.StartDegraded {
			return nil, fmt.Errorf("REDIS_URL: cannot reach Redis at %s: %w (set REDIS_FALLBACK=local to start without it, degraded)", s.where, err)
		}
		s.setDegraded(true, err)
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	s.done.Add(2)
	go s.watch(bg)
	go s.listen(bg)
	return s, nil
}

// Close stops the background work and closes the connection.
func (s *Store) Close() {
	s.stop()
	if c := s.client.Load(); c != nil {
		(*c).Close()
	}
	s.done.Wait()
}

// Where describes the Redis a URL points at for logs and errors: host, port and database,
// never the user or password.
func Where(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(an unreadable REDIS_URL)"
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		db = "0"
	}
	return u.Scheme + "://" + u.Host + "/" + db
}

// CheckURL says what is wrong with a REDIS_URL, naming the variable and showing the value
// with its password masked.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("REDIS_URL: not a URL; want redis://[user:password@]host:port[/db] or rediss:// for TLS")
	}
	if (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return fmt.Errorf("REDIS_URL %q: want redis://[user:password@]host:port[/db] or rediss:// for TLS", u.Redacted())
	}
	if _, err := rueidis.ParseURL(raw); err != nil {
		return fmt.Errorf("REDIS_URL %q: %v", u.Redacted(), err)
	}
	return nil
}

// CheckPrefix says what is wrong with a key prefix: empty, or with braces (hash tags) or
// white space.
func CheckPrefix(p string) error {
	if p == "" || strings.ContainsAny(p, "{} \t\r\n") {
		return fmt.Errorf("REDIS_PREFIX %q: want a non-empty name without braces or spaces, e.g. mdegraph-prod", p)
	}
	return nil
}

// Where is the Redis in use, as Where describes it.
func (s *Store) Where() string { return s.where }

// Degraded reports whether Redis is unreachable now, and since when.
func (s *Store) Degraded() (bool, time.Time) {
	if !s.degraded.Load() {
		return false, time.Time{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return true, s.degradedSince
}

// OnRecover registers f to run when Redis answers again after being unreachable (the Limiter
// writes back the calls it granted locally meanwhile); lost says Redis lost its data meanwhile
// (it restarted without persistence, or failed over to an empty replica). If f fails, the Store
// stays degraded and calls it again at the next health check. Register before the Store is
// used.
func (s *Store) OnRecover(f func(ctx context.Context, lost bool) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRecover = append(s.onRecover, f)
}

// connect makes the client if there is none, and checks it with PING. rueidis finds out by
// itself whether the server is a cluster (CLUSTER SLOTS) or a single node.
func (s *Store) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if s.client.Load() == nil {
		c, err := rueidis.NewClient(s.copt)
		if err != nil {
			return err
		}
		if !s.client.CompareAndSwap(nil, &c) {
			c.Close()
		}
	}
	c := *s.client.Load()
	start := time.Now()
	err := c.Do(ctx, c.B().Ping().Build()).Error()
	s.opts.Observer.RoundTrip("ping", time.Since(start), err)
	return err
}

// watch checks Redis every HealthInterval and switches between shared and degraded.
func (s *Store) watch(ctx context.Context) {
	defer s.done.Done()
	t := time.NewTicker(s.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.connect(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.setDegraded(true, err)
			continue
		}
		if s.degraded.Load() {
			lost, err := s.checkEpoch(ctx)
			if err != nil {
				continue
			}
			s.mu.Lock()
			s.lost = s.lost || lost
			fs, lost := s.onRecover, s.lost
			s.mu.Unlock()
			rctx := context.WithValue(ctx, recovering{}, true)
			for _, f := range fs {
				if err = f(rctx, lost); err != nil {
					break
				}
			}
			if err != nil {
				continue
			}
			s.mu.Lock()
			s.lost = false
			s.mu.Unlock()
			s.setDegraded(false, nil)
		}
	}
}

// checkEpoch reads the epoch key, a random value written once, and reports whether it changed
// since the Store last saw it: then Redis lost its data (the shared quota log with it).
func (s *Store) checkEpoch(ctx context.Context) (lost bool, err error) {
	c := *s.client.Load()
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	key := s.key("epoch", "")
	if err := c.Do(ctx, c.B().Set().Key(key).Value(newToken()).Nx().Build()).Error(); err != nil && !rueidis.IsRedisNil(err) {
		return false, err
	}
	epoch, err := c.Do(ctx, c.B().Get().Key(key).Build()).ToString()
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lost = s.epoch != "" && s.epoch != epoch
	s.epoch = epoch
	return lost, nil
}

// fail reports that a command failed because of Redis (not the caller): the Store is degraded
// from now until the health check finds Redis again.
func (s *Store) fail(err error) { s.setDegraded(true, err) }

// setDegraded records a change of health, logging it once per transition.
func (s *Store) setDegraded(degraded bool, err error) {
	if s.degraded.Swap(degraded) == degraded {
		return
	}
	s.mu.Lock()
	since := s.degradedSince
	if degraded {
		s.degradedSince = time.Now()
	}
	s.mu.Unlock()
	s.opts.Observer.Degraded(degraded)
	if degraded {
		s.opts.Logger.Warn("Redis unreachable: each replica now keeps a local quota budget (the limits divided by REPLICAS), "+
			"serves cached answers from its own memory and shares calls only within itself, until Redis answers again",
			"redis", s.where, "error", errString(err))
		return
	}
	s.opts.Logger.Info("Redis reachable again: quota, pauses, cache and calls in flight are shared again",
		"redis", s.where, "degraded_for", time.Since(since).Round(time.Millisecond))
}

// errString is err's message, or "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// recovering marks the context of the OnRecover callbacks, which use Redis before the Store
// stops being degraded for everyone else.
type recovering struct{}

// conn returns the client while Redis is reachable, or nil while the Store is degraded (except
// to the OnRecover callbacks).
func (s *Store) conn(ctx context.Context) rueidis.Client {
	if s.degraded.Load() && ctx.Value(recovering{}) == nil {
		return nil
	}
	c := s.client.Load()
	if c == nil {
		return nil
	}
	return *c
}

// key is the Redis key of parts under the Store's prefix, inside the hash tag {prefix:tag}:
// the keys of one script share tag and so one cluster slot.
func (s *Store) key(tag string, suffix string) string {
	return "{" + s.opts.Prefix + ":" + tag + "}" + suffix
}

// run sends one script (EVALSHA, then EVAL if Redis does not know it), as runMulti does.
func (s *Store) run(ctx context.Context, op string, script *rueidis.Lua, sha string, keys, args []string) (rueidis.RedisResult, error) {
	results, err := s.runMulti(ctx, op, script, sha, []rueidis.LuaExec{{Keys: keys, Args: args}})
	if err != nil {
		return rueidis.RedisResult{}, err
	}
	return results[0], results[0].Error()
}

// runMulti sends script once per exec in one pipeline (EVALSHA, then EVAL for a script Redis
// does not know yet: rueidis's ExecMulti would SCRIPT LOAD on every call), with a span and a
// round-trip observation. The execs may be in different cluster slots. err is set when Redis
// failed, and then degrades the Store.
func (s *Store) runMulti(ctx context.Context, op string, script *rueidis.Lua, sha string, execs []rueidis.LuaExec) ([]rueidis.RedisResult, error) {
	c := s.conn(ctx)
	if c == nil {
		return nil, errUnreachable
	}
	parent := ctx
	ctx, span := tracer.Start(ctx, "redis "+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system.name", "redis"), attribute.String("db.operation.name", "EVALSHA"),
			attribute.String("mdegraph.redis.script", op), attribute.Int("db.operation.batch.size", len(execs))))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	start := time.Now()
	send := func() ([]rueidis.RedisResult, error) {
		cmds := make(rueidis.Commands, len(execs))
		for i, e := range execs {
			cmds[i] = c.B().Evalsha().Sha1(sha).Numkeys(int64(len(e.Keys))).Key(e.Keys...).Arg(e.Args...).Build()
		}
		results := c.DoMulti(ctx, cmds...)
		var failed error
		for i, res := range results {
			if re, ok := rueidis.IsRedisErr(res.Error()); ok && re.IsNoScript() {
				results[i] = script.Exec(ctx, c, execs[i].Keys, execs[i].Args)
			}
			if err := failure(parent, results[i].Error()); err != nil && failed == nil {
				failed = err
			}
		}
		return results, failed
	}
	results, failed := send()
	if brokenConn(failed) && ctx.Err() == nil {
		// A connection that broke while idle (Redis restarted) is found out on use; rueidis
		// dials a new one for the next command. (A script that ran before the break runs
		// twice: a grant or a reservation too many, never one too few.)
		results, failed = send()
	}
	s.opts.Observer.RoundTrip(op, time.Since(start), failed)
	if failed != nil {
		span.RecordError(failed)
		span.SetStatus(codes.Error, failed.Error())
		s.fail(failed)
	}
	return results, failed
}

// do sends one command with a round-trip observation; like run, a failure that is Redis's
// degrades the Store. A nil reply (a missing key) is not a failure.
func (s *Store) do(ctx context.Context, op string, build func(c rueidis.Client) rueidis.Completed) (rueidis.RedisResult, error) {
	c := s.conn(ctx)
	if c == nil {
		return rueidis.RedisResult{}, errUnreachable
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	start := time.Now()
	res := c.Do(cctx, build(c))
	err := res.Error()
	if brokenConn(failure(ctx, err)) && cctx.Err() == nil {
		res = c.Do(cctx, build(c)) // as in runMulti: a connection that broke while idle
		err = res.Error()
	}
	if rueidis.IsRedisNil(err) {
		err = nil
	}
	failed := failure(ctx, err)
	s.opts.Observer.RoundTrip(op, time.Since(start), failed)
	if failed != nil {
		s.fail(err)
	}
	return res, err
}

// sha1Hex is the SHA-1 of a script, as EVALSHA names it.
func sha1Hex(script string) string {
	sum := sha1.Sum([]byte(script))
	return hex.EncodeToString(sum[:])
}

// errUnreachable is what operations get while the Store is degraded.
var errUnreachable = errors.New("redis: unreachable (degraded)")

// redisFailure returns err if it says Redis failed or could not be reached (a network error,
// a timeout, a closed client, a server loading or failing over), nil if there is no error or
// the error is a reply (a missing key, a script's own error).
func redisFailure(err error) error {
	if err == nil || rueidis.IsRedisNil(err) {
		return nil
	}
	if re, ok := rueidis.IsRedisErr(err); ok {
		msg := re.Error()
		for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS"} {
			if strings.HasPrefix(msg, p) {
				return err
			}
		}
		return nil
	}
	return err // from the client: a network error, a timeout, EOF, a closed client
}

// brokenConn reports whether err is a connection found broken (EOF, reset, closed), which a
// new connection may not have, rather than a timeout or a server's reply.
func brokenConn(err error) bool {
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if _, ok := rueidis.IsRedisErr(err); ok {
		return false
	}
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

// failure is redisFailure(err), unless ctx (the caller's) ended: then the caller gave up, and
// Redis is not to blame.
func failure(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return redisFailure(err)
}
