package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

var created = time.Date(2026, 12, 4, 1, 2, 3, 0, time.UTC)

// blob is a file's content as a WriterTo.
type blob []byte

func (b blob) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// content of each test file: long enough to span gzip blocks.
func content(name string) blob {
	return blob(strings.Repeat(name+" page\x00", 3000))
}

// archive writes an embedded-store archive: two projections at 7 and 9,
// the spool, the store at head 9.
func archive(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, created, "test", StoreInfo{Kind: StoreEmbedded})
	add := func(f File) {
		t.Helper()
		c := content(f.Path)
		if err := w.Add(f, int64(len(c)), c); err != nil {
			t.Fatal(err)
		}
	}
	add(File{Path: "projections/lists.db", Kind: KindProjection, Projection: "lists", ProjectionVersion: "3", Checkpoint: &Position{7, 7}, Events: 7})
	add(File{Path: "projections/reports.db", Kind: KindProjection, Projection: "reports", Checkpoint: &Position{9, 9}, Events: 9})
	add(File{Path: PendingFile, Kind: KindPending})
	add(File{Path: EventsFile, Kind: KindEvents})
	w.SetHead(Position{9, 9})
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	data := archive(t)
	got := map[string][]byte{}
	m, err := Read(bytes.NewReader(data), func(path string, size int64, r io.Reader) error {
		b, err := io.ReadAll(r)
		if int64(len(b)) != size {
			t.Errorf("%s: %d bytes, header says %d", path, len(b), size)
		}
		got[path] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Store.Head != (Position{9, 9}) || m.Version != "test" || !m.Created.Equal(created) || len(m.Files) != 4 {
		t.Fatalf("manifest %+v", m)
	}
	for _, f := range m.Files {
		if !bytes.Equal(got[f.Path], content(f.Path)) {
			t.Errorf("%s: content differs", f.Path)
		}
	}
	if m.Files[0].Checkpoint == nil || *m.Files[0].Checkpoint != (Position{7, 7}) || m.Files[3].Path != EventsFile {
		t.Errorf("files %+v", m.Files)
	}
	// An extractor that reads nothing still gets the whole archive checked.
	if _, err := Read(bytes.NewReader(data), func(string, int64, io.Reader) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// Every cut of an archive is refused with an error that says it is not
// valid; none is read as a smaller backup.
func TestTruncatedArchiveIsRefused(t *testing.T) {
	data := archive(t)
	for _, n := range []int{0, 5, 10, 100, len(data) / 3, len(data) / 2, len(data) - 100, len(data) - 9, len(data) - 1} {
		_, err := Read(bytes.NewReader(data[:n]), nil)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("cut at %d of %d: %v, want ErrInvalid", n, len(data), err)
		}
	}
	_, err := Read(bytes.NewReader(data[:len(data)-9]), nil)
	if err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("cut in the gzip trailer: %v, want it to say the archive was cut short", err)
	}
}

// rewrite decompresses an archive, lets edit change its entries, and
// compresses it again: a well-formed gzip and tar with altered content.
func rewrite(t *testing.T, data []byte, edit func(hdrs []*tar.Header, bodies [][]byte) ([]*tar.Header, [][]byte)) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var hdrs []*tar.Header
	var bodies [][]byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		hdrs, bodies = append(hdrs, h), append(bodies, b)
	}
	hdrs, bodies = edit(hdrs, bodies)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for i, h := range hdrs {
		h.Size = int64(len(bodies[i]))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bodies[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	tw.Close()
	zw.Close()
	return out.Bytes()
}

func editManifest(t *testing.T, change func(m *Manifest)) func([]*tar.Header, [][]byte) ([]*tar.Header, [][]byte) {
	return func(h []*tar.Header, b [][]byte) ([]*tar.Header, [][]byte) {
		var m Manifest
		if err := json.Unmarshal(b[len(b)-1], &m); err != nil {
			t.Fatal(err)
		}
		change(&m)
		b[len(b)-1], _ = json.Marshal(m)
		return h, b
	}
}

// An archive whose gzip and tar are sound but whose content was altered
// is refused, and the error says what is wrong.
func TestTamperedArchiveIsRefused(t *testing.T) {
	data := archive(t)
	cases := []struct {
		name string
		edit func([]*tar.Header, [][]byte) ([]*tar.Header, [][]byte)
		want string
	}{
		{"a byte of the store changed", func(h []*tar.Header, b [][]byte) ([]*tar.Header, [][]byte) {
			b[3][100] ^= 1
			return h, b
		}, "events.db: SHA-256"},
		{"a file dropped", func(h []*tar.Header, b [][]byte) ([]*tar.Header, [][]byte) {
			return append(h[:1], h[2:]...), append(b[:1], b[2:]...)
		}, "the manifest lists 4 files, the archive holds 3"},
		{"files swapped", func(h []*tar.Header, b [][]byte) ([]*tar.Header, [][]byte) {
			h[0], h[1], b[0], b[1] = h[1], h[0], b[1], b[0]
			return h, b
		}, "file 1 is projections/reports.db"},
		{"no manifest", func(h []*tar.Header, b [][]byte) ([]*tar.Header, [][]byte) {
			return h[:4], b[:4]
		}, "no manifest"},
		{"a file after the manifest", func(h []*tar.Header, b [][]byte) ([]*tar.Header, [][]byte) {
			return append(h, &tar.Header{Typeflag: tar.TypeReg, Name: "pending.db", Mode: 0o600}), append(b, []byte("x"))
		}, `"pending.db" after the manifest`},
		{"a path out of the directory", func(h []*tar.Header, b [][]byte) ([]*tar.Header, [][]byte) {
			h[2].Name = "../pending.db"
			return h, b
		}, `"../pending.db" is not a file of a backup`},
		{"a symlink", func(h []*tar.Header, b [][]byte) ([]*tar.Header, [][]byte) {
			h[2].Typeflag, h[2].Linkname = tar.TypeSymlink, "/etc/passwd"
			return h, b
		}, "not a regular file"},
		{"a file twice", func(h []*tar.Header, b [][]byte) ([]*tar.Header, [][]byte) {
			return append([]*tar.Header{h[0]}, h...), append([][]byte{b[0]}, b...)
		}, "in the archive twice"},
		{"a hash changed in the manifest", editManifest(t, func(m *Manifest) { m.Files[0].SHA256 = strings.Repeat("0", 64) }), "projections/lists.db: SHA-256"},
		{"a newer format", editManifest(t, func(m *Manifest) { m.Format = 2 }), "made by a newer callguard"},
		{"a projection ahead of the log", editManifest(t, func(m *Manifest) { m.Store.Head = Position{8, 8} }), "projection reports is at 9, after the log's last event 8"},
		{"the log missing for an embedded store", editManifest(t, func(m *Manifest) { m.Store.Kind = StorePostgres }), "the store is postgres but the archive has an events.db"},
		{"a manifest that is not JSON", func(h []*tar.Header, b [][]byte) ([]*tar.Header, [][]byte) {
			b[4] = []byte("{")
			return h, b
		}, "the manifest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(rewrite(t, data, c.edit)), func(string, int64, io.Reader) error { return nil })
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want ErrInvalid saying %q", err, c.want)
			}
		})
	}
	// The untouched round trip through rewrite still reads: the cases
	// above fail for their edit, not for the rewriting.
	if _, err := Read(bytes.NewReader(rewrite(t, data, func(h []*tar.Header, b [][]byte) ([]*tar.Header, [][]byte) { return h, b })), nil); err != nil {
		t.Fatal(err)
	}
}

func TestWriterRefusesWhatAReaderWould(t *testing.T) {
	w := NewWriter(io.Discard, created, "test", StoreInfo{Kind: StoreEmbedded})
	if err := w.Add(File{Path: "../etc/passwd", Kind: KindEvents}, 1, blob("x")); !errors.Is(err, ErrInvalid) {
		t.Errorf("a path out of the directory: %v", err)
	}
	w = NewWriter(io.Discard, created, "test", StoreInfo{Kind: StoreEmbedded})
	if err := w.Add(File{Path: EventsFile, Kind: KindEvents}, 5, blob("abc")); err == nil || !strings.Contains(err.Error(), "3 bytes written, 5 announced") {
		t.Errorf("a short copy: %v", err)
	}
	w = NewWriter(io.Discard, created, "test", StoreInfo{Kind: StoreEmbedded})
	if _, err := w.Close(); !errors.Is(err, ErrInvalid) {
		t.Errorf("an embedded backup without the store: %v", err)
	}
	w = NewWriter(io.Discard, created, "test", StoreInfo{Kind: StorePostgres})
	c := content("p")
	if err := w.Add(File{Path: "projections/lists.db", Kind: KindProjection, Projection: "lists", Checkpoint: &Position{}}, int64(len(c)), c); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Errorf("a database store's backup of the projections alone: %v", err)
	}
}

// FuzzRead feeds the reader arbitrary archives: it must not panic, and
// whatever it accepts must be a valid manifest over exactly the files it
// handed out, with their hashes.
func FuzzRead(f *testing.F) {
	t := &testing.T{}
	data := archive(t)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte{})
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"))
	var small bytes.Buffer
	w := NewWriter(&small, created, "fuzz", StoreInfo{Kind: StoreEventStoreDB})
	_, _ = w.Close()
	f.Add(small.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		var paths []string
		m, err := Read(bytes.NewReader(data), func(path string, size int64, r io.Reader) error {
			paths = append(paths, path)
			_, err := io.Copy(io.Discard, io.LimitReader(r, 1<<20))
			return err
		})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("an error that does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted an invalid manifest: %v", err)
		}
		if len(paths) != len(m.Files) {
			t.Fatalf("handed out %v, manifest %+v", paths, m.Files)
		}
		for i, p := range paths {
			if !validPath.MatchString(p) || p != m.Files[i].Path {
				t.Fatalf("handed out %q as file %d", p, i)
			}
		}
	})
}
