// Package redistest starts a private redis-server for tests and the load test: on a free
// loopback port, with its files in a temporary directory, nothing saved, stopped by its process
// id. Tests call New, which skips the test with a message when redis-server is not installed,
// except under CI=true, where that is a failure.
package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// Binary is the server started, looked up in PATH.
const Binary = "redis-server"

// ErrNotInstalled says redis-server is not in PATH.
var ErrNotInstalled = errors.New(Binary + " is not installed (Debian: apt-get install redis-server)")

// Server is a redis-server process this package started. Its methods are safe for concurrent
// use.
type Server struct {
	// Addr is host:port on loopback; it stays the same across Stop and Start.
	Addr string
	dir  string
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Start starts a redis-server on a free loopback port with its working directory in dir,
// saving nothing to disk, and waits until it answers PING. extra are more command-line
// arguments (for example "--cluster-enabled", "yes").
func Start(ctx context.Context, dir string, extra ...string) (*Server, error) {
	if _, err := exec.LookPath(Binary); err != nil {
		return nil, ErrNotInstalled
	}
	var lastErr error
	for range 5 { // a port picked free can be taken before the server binds it: pick again
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir}
		s.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--protected-mode", "yes", "--logfile", ""}, extra...)
		if lastErr = s.Start(ctx); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// Start starts the server again after Stop, on the same port.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	cmd := exec.Command(Binary, s.args...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", Binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if ping(s.Addr) == nil {
			s.cmd = cmd
			go func() { <-exited }()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%s on %s exited at start: %v", Binary, s.Addr, err)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%s on %s did not answer PING: %w", Binary, s.Addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop kills the server by its process id and waits until its port is closed. Its data is
// lost (nothing is saved), as after a crash.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	s.cmd = nil
	for range 500 {
		c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

// ping sends PING and expects +PONG.
func ping(addr string) error {
	reply, err := send(addr, "PING")
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(reply, []byte("+PONG\r\n")) && !bytes.HasPrefix(reply, []byte("-NOAUTH")) { // "-NOAUTH": up, with a password
		return fmt.Errorf("PING answered %q", reply)
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// TB is the part of testing.TB that New uses.
type TB interface {
	Helper()
	Context() context.Context
	TempDir() string
	Cleanup(func())
	Skip(args ...any)
	Fatal(args ...any)
}

// New starts a server for the test t and stops it when t ends. Without redis-server the test
// is skipped with a message, unless the environment has CI=true, where it fails.
func New(t TB, extra ...string) *Server {
	t.Helper()
	s, err := Start(t.Context(), t.TempDir(), extra...)
	switch {
	case errors.Is(err, ErrNotInstalled) && os.Getenv("CI") != "true":
		t.Skip("skipping: ", err)
	case err != nil:
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// NewCluster is New with Redis Cluster enabled: one node serving all 16384 hash slots, so
// that a command or script whose keys are not in one slot fails with CROSSSLOT as it would on
// a real cluster (or on Azure Cache for Redis with clustering).
func NewCluster(t TB) *Server {
	t.Helper()
	s := New(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	if err := s.command("CLUSTER", "ADDSLOTSRANGE", "0", "16383"); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		if s.command("SET", "{probe}", "1") == nil {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the one-node cluster never served its slots")
	return nil
}

// command sends one command and fails unless the reply is a simple string (+OK).
func (s *Server) command(args ...string) error {
	reply, err := send(s.Addr, args...)
	if err != nil {
		return err
	}
	if len(reply) == 0 || reply[0] != '+' {
		return fmt.Errorf("%v: %q", args, reply)
	}
	return nil
}

// send sends one command in RESP to addr on a connection of its own, and returns the start
// of the reply (up to 256 bytes).
func send(addr string, args ...string) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	req := "*" + strconv.Itoa(len(args)) + "\r\n"
	for _, a := range args {
		req += "$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n"
	}
	if _, err := c.Write([]byte(req)); err != nil {
		return nil, err
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}
