package callerauth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// API keys are configured by their SHA-256 only, so the configuration (an environment variable,
// a mounted secret, a process listing) never holds a key that works: API_KEYS is a
// comma-separated list of name:sha256hex pairs, API_KEYS_FILE a file of one pair per line.

// APIKey is one configured API key: its name, which is the caller's identity in logs and metrics
// (principal.KindAPIKey), and the SHA-256 of the key itself. It holds no secret.
type APIKey struct {
	Name string
	Hash [sha256.Size]byte
}

// MaxAPIKeyNameLen bounds a key's name, which becomes part of log lines and metric labels.
const MaxAPIKeyNameLen = 64

// APIKeyPrefix starts every key NewAPIKey generates, so secret scanners can recognise a leaked
// one. Keys need not have it: any key whose SHA-256 is configured is accepted.
const APIKeyPrefix = "mdg_"

// ParseAPIKeys parses the API_KEYS setting: comma-separated name:sha256hex pairs, where name is
// 1 to 64 letters, digits, '-', '_' or '.', and sha256hex is the 64 hex digits (either case) of
// the SHA-256 of the key, e.g. from `printf %s "$KEY" | sha256sum` or NewAPIKey. Spaces around
// pairs are ignored; "" is no key. Names must be unique and so must hashes. Errors name API_KEYS
// and the pair (the hash, never a key, appears in them).
func ParseAPIKeys(value string) ([]APIKey, error) {
	var keys []APIKey
	var errs []error
	for i, pair := range strings.Split(value, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, err := parseAPIKey(pair)
		if err != nil {
			errs = append(errs, fmt.Errorf("API_KEYS: pair %d: %w", i+1, err))
			continue
		}
		keys = append(keys, k)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return keys, checkUnique(keys, "API_KEYS")
}

// ParseAPIKeysFile parses the contents of an API_KEYS_FILE: one name:sha256hex pair per line
// (as in ParseAPIKeys), blank lines and lines starting with # ignored. source names the file in
// errors, with the line number.
func ParseAPIKeysFile(source string, data []byte) ([]APIKey, error) {
	var keys []APIKey
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseAPIKey(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("API_KEYS_FILE %s: line %d: %w", source, n, err))
			continue
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("API_KEYS_FILE %s: %w", source, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return keys, checkUnique(keys, "API_KEYS_FILE "+source)
}

// LoadAPIKeys reads both settings: the API_KEYS value and, when path is not empty, the
// API_KEYS_FILE at path. It returns the keys of both, which must have distinct names and hashes;
// together they may be empty (New refuses ModeAPIKey without a key).
func LoadAPIKeys(value, path string) ([]APIKey, error) {
	keys, err := ParseAPIKeys(value)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return keys, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("API_KEYS_FILE: %w", err)
	}
	fromFile, err := ParseAPIKeysFile(path, data)
	if err != nil {
		return nil, err
	}
	keys = append(keys, fromFile...)
	return keys, checkUnique(keys, "API_KEYS and API_KEYS_FILE")
}

func parseAPIKey(pair string) (APIKey, error) {
	name, sum, ok := strings.Cut(pair, ":")
	if !ok {
		return APIKey{}, errors.New("want name:sha256hex (the SHA-256 of the key, not the key)")
	}
	name, sum = strings.TrimSpace(name), strings.TrimSpace(sum)
	if err := checkKeyName(name); err != nil {
		return APIKey{}, err
	}
	k := APIKey{Name: name}
	if len(sum) != hex.EncodedLen(sha256.Size) {
		return APIKey{}, fmt.Errorf("key %q: the hash has %d characters, want the 64 hex digits of a SHA-256 (configure the key's hash, never the key)", name, len(sum))
	}
	if _, err := hex.Decode(k.Hash[:], []byte(sum)); err != nil {
		return APIKey{}, fmt.Errorf("key %q: the hash is not hexadecimal", name)
	}
	return k, nil
}

func checkKeyName(name string) error {
	if name == "" || len(name) > MaxAPIKeyNameLen {
		return fmt.Errorf("a key's name must have 1 to %d characters", MaxAPIKeyNameLen)
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("key name %q: use only letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

func checkUnique(keys []APIKey, setting string) error {
	names := make(map[string]bool, len(keys))
	hashes := make(map[[sha256.Size]byte]string, len(keys))
	var errs []error
	for _, k := range keys {
		if names[k.Name] {
			errs = append(errs, fmt.Errorf("%s: the name %q appears twice", setting, k.Name))
		}
		names[k.Name] = true
		if other, ok := hashes[k.Hash]; ok {
			errs = append(errs, fmt.Errorf("%s: keys %q and %q have the same hash: give each caller its own key", setting, other, k.Name))
		}
		hashes[k.Hash] = k.Name
	}
	return errors.Join(errs...)
}

// HashAPIKey returns the SHA-256 of key as 64 lower-case hex digits: what API_KEYS holds.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// NewAPIKey generates a key for the caller name: APIKeyPrefix and 256 random bits in base64url
// (47 characters in all), and its configuration entry "name:sha256hex" for API_KEYS or a line
// of API_KEYS_FILE. The key is shown once, to the person who hands it to the caller; only the
// entry is configured. The error is an invalid name.
func NewAPIKey(name string) (key, entry string, err error) {
	if err := checkKeyName(name); err != nil {
		return "", "", err
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	key = APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, apiKeyEntry(name, key), nil
}

// APIKeyEntry returns the API_KEYS entry ("name:sha256hex") for an existing key, or an error if
// name is not a valid key name.
func APIKeyEntry(name, key string) (string, error) {
	if err := checkKeyName(name); err != nil {
		return "", err
	}
	return apiKeyEntry(name, key), nil
}

func apiKeyEntry(name, key string) string { return name + ":" + HashAPIKey(key) }

// matchAPIKey returns the configured key whose hash is the SHA-256 of presented. Every
// configured hash is compared, in constant time, whatever matched, so the time taken says
// neither whether nor which key matched.
func matchAPIKey(keys []APIKey, presented string) (APIKey, bool) {
	sum := sha256.Sum256([]byte(presented))
	match := -1
	for i := range keys {
		eq := subtle.ConstantTimeCompare(sum[:], keys[i].Hash[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return APIKey{}, false
	}
	return keys[match], true
}
