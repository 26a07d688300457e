// Command tlogverify reads a C2SP tlog-tiles log over HTTP and verifies it with Go's own
// transparency-log packages (golang.org/x/mod/sumdb/tlog and note), independently of
// Redline's code: the signed checkpoint, every tile it reads against the checkpoint's root,
// an inclusion proof of every entry, and optionally a consistency proof from an older tree
// given on the command line.
//
// With -proof FILE it reads no log: it verifies one C2SP tlog-proof (c2sp.org/tlog-proof, as
// `redline proof` writes it) offline, with tlog.CheckRecord over the RFC 9162 record hash of
// the proof's `extra` bytes, against the checkpoint it carries, opened with the key.
//
// It prints one JSON object on success and exits 1 with the reason on any failure.
//
// Built by tests/tests/tlog_tiles.rs in GOPATH mode against Debian's
// golang-golang-x-mod-dev (GOPATH=/usr/share/gocode GO111MODULE=off), so it needs no network.
package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const tileHeight = 8

type result struct {
	Origin              string `json:"origin"`
	Size                int64  `json:"size"`
	Root                string `json:"root"`
	Signers             int    `json:"signers"`
	EntriesVerified     int64  `json:"entries_verified"`
	ConsistencyFrom     int64  `json:"consistency_from,omitempty"`
	TilesFetched        int    `json:"tiles_fetched"`
	CacheControlOfTiles string `json:"cache_control_of_tiles"`
}

// fetcher GETs resources under one prefix, with an optional bearer token, and keeps what it
// fetched (TileHashReader asks for the same tiles again for every proof).
type fetcher struct {
	prefix string
	token  string
	mu     sync.Mutex
	cache  map[string][]byte
	header http.Header
}

func (f *fetcher) get(path string) ([]byte, error) {
	f.mu.Lock()
	if b, ok := f.cache[path]; ok {
		f.mu.Unlock()
		return b, nil
	}
	f.mu.Unlock()
	req, err := http.NewRequest("GET", f.prefix+path, nil)
	if err != nil {
		return nil, err
	}
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	f.mu.Lock()
	f.cache[path] = body
	if strings.HasPrefix(path, "tile/") {
		f.header = resp.Header
	}
	f.mu.Unlock()
	return body, nil
}

// c2spPath turns Go's tile path (tile/8/L/N, tile/8/data/N) into C2SP's (tile/L/N,
// tile/entries/N): C2SP fixes the height at 8 and drops it.
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), "tile/8/")
	if strings.HasPrefix(p, "data/") {
		return "tile/entries/" + strings.TrimPrefix(p, "data/")
	}
	return "tile/" + p
}

type tileReader struct{ f *fetcher }

func (r tileReader) Height() int { return tileHeight }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := r.f.get(c2spPath(t))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (r tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// parseCheckpoint reads C2SP tlog-checkpoint text: origin, decimal size, base64 root, then
// optional extension lines.
func parseCheckpoint(text string) (origin string, size int64, root tlog.Hash, err error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 {
		return "", 0, root, errors.New("checkpoint has fewer than three lines")
	}
	size, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return "", 0, root, fmt.Errorf("bad tree size %q", lines[1])
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return "", 0, root, fmt.Errorf("bad root hash %q", lines[2])
	}
	copy(root[:], h)
	return lines[0], size, root, nil
}

type proofResult struct {
	Origin      string `json:"origin"`
	Size        int64  `json:"size"`
	Index       int64  `json:"index"`
	EntryBase64 string `json:"entry"`
	ProofHashes int    `json:"proof_hashes"`
}

// verifyProofFile checks a tlog-proof: header, `extra` (the record), `index`, the inclusion
// proof hashes up to an empty line, then the signed checkpoint, verbatim.
func verifyProofFile(path, vkey string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("verifier key: %v", err)
	}
	text := string(raw)
	next := func() string {
		i := strings.IndexByte(text, '\n')
		if i < 0 {
			fail("proof is truncated")
		}
		line := text[:i]
		text = text[i+1:]
		return line
	}
	if next() != "c2sp.org/tlog-proof@v1" {
		fail("not a c2sp.org/tlog-proof@v1")
	}
	line := next()
	if !strings.HasPrefix(line, "extra ") {
		fail("no extra line: the proof carries no record")
	}
	record, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "extra "))
	if err != nil {
		fail("extra: %v", err)
	}
	line = next()
	index, err := strconv.ParseInt(strings.TrimPrefix(line, "index "), 10, 64)
	if !strings.HasPrefix(line, "index ") || err != nil {
		fail("bad index line %q", line)
	}
	var proof tlog.RecordProof
	for line = next(); line != ""; line = next() {
		h, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(h) != tlog.HashSize {
			fail("bad proof hash %q", line)
		}
		var hash tlog.Hash
		copy(hash[:], h)
		proof = append(proof, hash)
	}
	n, err := note.Open([]byte(text), note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	origin, size, root, err := parseCheckpoint(n.Text)
	if err != nil {
		fail("checkpoint text: %v", err)
	}
	if origin != verifier.Name() {
		fail("checkpoint origin %q is not the key's name %q", origin, verifier.Name())
	}
	if err := tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(record)); err != nil {
		fail("record %d is not in the signed tree of %d: %v", index, size, err)
	}
	out, _ := json.Marshal(proofResult{Origin: origin, Size: size, Index: index,
		EntryBase64: base64.StdEncoding.EncodeToString(record), ProofHashes: len(proof)})
	fmt.Println(string(out))
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "tlogverify: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	prefix := flag.String("url", "", "log prefix URL, ending in /")
	vkey := flag.String("vkey", "", "the origin's signed-note verifier key")
	token := flag.String("token", "", "bearer token (entry bundles of a node need audit or federate)")
	entries := flag.Bool("entries", true, "fetch every entry bundle and prove each entry's inclusion")
	oldSize := flag.Int64("old-size", 0, "prove consistency from the tree of this size...")
	oldRoot := flag.String("old-root", "", "...whose root is this (base64)")
	proofFile := flag.String("proof", "", "verify this tlog-proof file offline instead of a log")
	flag.Parse()
	if *proofFile != "" && *vkey != "" {
		verifyProofFile(*proofFile, *vkey)
		return
	}
	if *prefix == "" || *vkey == "" {
		fail("-url and -vkey are required")
	}
	if !strings.HasSuffix(*prefix, "/") {
		*prefix += "/"
	}
	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		fail("verifier key: %v", err)
	}
	f := &fetcher{prefix: *prefix, token: *token, cache: map[string][]byte{}}

	raw, err := f.get("checkpoint")
	if err != nil {
		fail("%v", err)
	}
	n, err := note.Open(raw, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	origin, size, root, err := parseCheckpoint(n.Text)
	if err != nil {
		fail("checkpoint text: %v", err)
	}
	if origin != verifier.Name() {
		fail("checkpoint origin %q is not the key's name %q", origin, verifier.Name())
	}
	res := result{Origin: origin, Size: size, Root: base64.StdEncoding.EncodeToString(root[:]), Signers: len(n.Sigs)}
	if size == 0 {
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
		return
	}

	tree := tlog.Tree{N: size, Hash: root}
	hashes := tlog.TileHashReader(tree, tileReader{f})
	// TreeHash reads the tiles covering the whole tree; TileHashReader checks every tile it
	// reads against the tree's root before handing out a hash.
	th, err := tlog.TreeHash(size, hashes)
	if err != nil {
		fail("tree hash: %v", err)
	}
	if th != root {
		fail("tiles hash to %v, the checkpoint says %v", th, root)
	}

	if *entries {
		for start := int64(0); start < size; start += 256 {
			width := size - start
			if width > 256 {
				width = 256
			}
			bundle := tlog.Tile{H: tileHeight, L: -1, N: start / 256, W: int(width)}
			data, err := f.get(c2spPath(bundle))
			if err != nil {
				fail("%v", err)
			}
			for i := int64(0); i < width; i++ {
				if len(data) < 2 {
					fail("entry bundle %d is truncated at entry %d", start/256, i)
				}
				l := int(binary.BigEndian.Uint16(data))
				if len(data) < 2+l {
					fail("entry bundle %d is truncated in entry %d", start/256, i)
				}
				entry := data[2 : 2+l]
				data = data[2+l:]
				index := start + i
				proof, err := tlog.ProveRecord(size, index, hashes)
				if err != nil {
					fail("inclusion proof of %d: %v", index, err)
				}
				if err := tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(entry)); err != nil {
					fail("entry %d is not in the tree: %v", index, err)
				}
				res.EntriesVerified++
			}
			if len(data) != 0 {
				fail("entry bundle %d has %d bytes after its %d entries", start/256, len(data), width)
			}
		}
	}

	if *oldSize > 0 {
		h, err := base64.StdEncoding.DecodeString(*oldRoot)
		if err != nil || len(h) != tlog.HashSize {
			fail("bad -old-root")
		}
		var old tlog.Hash
		copy(old[:], h)
		proof, err := tlog.ProveTree(size, *oldSize, hashes)
		if err != nil {
			fail("consistency proof: %v", err)
		}
		if err := tlog.CheckTree(proof, size, root, *oldSize, old); err != nil {
			fail("the tree of %d does not extend the one of %d given: %v", size, *oldSize, err)
		}
		res.ConsistencyFrom = *oldSize
	}

	res.TilesFetched = len(f.cache) - 1
	if f.header != nil {
		res.CacheControlOfTiles = f.header.Get("Cache-Control")
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}
