// Command mdegraph-apikey makes an API key for one caller of mdegraph (AUTH_MODE=apikey): it
// prints the key, to hand to the caller once, and the entry to configure, name:sha256hex, for
// API_KEYS (comma-separated) or a line of API_KEYS_FILE. The service keeps only the hash.
//
//	go run ./cmd/mdegraph-apikey soc-dashboard
//
// With -stdin it reads an existing key from standard input instead of generating one (a
// trailing newline is dropped) and prints only its entry:
//
//	printf %s "$KEY" | go run ./cmd/mdegraph-apikey -stdin soc-dashboard
//
// The same entry without this command: echo "soc-dashboard:$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)".
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mdegraph/mdegraph/internal/callerauth"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "mdegraph-apikey:", err)
		os.Exit(2)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mdegraph-apikey", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fromStdin := fs.Bool("stdin", false, "read the key from standard input instead of generating one")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mdegraph-apikey [-stdin] NAME\n\nNAME is the caller's name in logs and metrics: letters, digits, '-', '_', '.'.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give exactly one NAME")
	}
	name := fs.Arg(0)
	if !*fromStdin {
		key, entry, err := callerauth.NewAPIKey(name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key (give it to the caller now; it is not stored anywhere):\n  %s\nentry for API_KEYS, or a line of API_KEYS_FILE:\n  %s\n", key, entry)
		return nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the key: %w", err)
	}
	key := strings.TrimRight(line, "\r\n")
	if key == "" {
		return errors.New("no key on standard input")
	}
	entry, err := callerauth.APIKeyEntry(name, key)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, entry)
	return nil
}
