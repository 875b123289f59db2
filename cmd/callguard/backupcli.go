package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/actors/call/spool"
	"github.com/callguard/callguard/cmd/callguard/backup"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/projections/readside"
	"github.com/callguard/callguard/projections/runner"
)

// Backups (README, "Backup and restore"): a running guard makes the
// archive itself (GET /v1/backup), since bbolt's file lock keeps every
// other process out of its files; with no guard on the data directory
// the CLI opens the files and makes the same archive. Either way each
// database is copied in one read transaction, the projections first and
// the event store last, so no projection is ahead of the log it comes
// with.

// backupSources are the databases a backup copies; a nil one is left out.
type backupSources struct {
	kind     string          // backup.Store*
	store    events.Store    // the head of a database server's log
	embedded *embedded.Store // the embedded store (nil with a server)
	runner   *runner.Runner
	spool    *spool.Spool
}

// storeKind names the event store cfg selects, as a manifest does.
func storeKind(cfg Config) string {
	switch {
	case cfg.PostgresURL != "":
		return backup.StorePostgres
	case cfg.EventStoreURL != "":
		return backup.StoreEventStoreDB
	}
	return backup.StoreEmbedded
}

func (g *guard) backupSources(cfg Config, rs *readside.ReadSide) backupSources {
	return backupSources{kind: storeKind(cfg), store: g.store, embedded: g.embedded, runner: rs.Runner, spool: g.spool}
}

// writeBackup writes the archive of src to w.
func writeBackup(ctx context.Context, w io.Writer, src backupSources) (backup.Manifest, error) {
	aw := backup.NewWriter(w, time.Now(), version, backup.StoreInfo{Kind: src.kind})
	if src.runner != nil {
		err := src.runner.Backup(ctx, func(c runner.Copy) error {
			cp := backup.Position{Commit: c.Position.Commit, Prepare: c.Position.Prepare}
			return aw.Add(backup.File{
				Path: backup.ProjectionsDir + "/" + c.Name + ".db", Kind: backup.KindProjection,
				Projection: c.Name, ProjectionVersion: c.Version, Checkpoint: &cp, Events: c.Events,
			}, c.Size, c)
		})
		if err != nil {
			return backup.Manifest{}, err
		}
	}
	if src.spool != nil {
		// Before the log: a call stream recorded meanwhile is then in
		// both, and appending it again writes nothing (its event IDs are
		// derived); after it, one could be in neither.
		err := src.spool.Backup(func(entries int, size int64, wt io.WriterTo) error {
			return aw.Add(backup.File{Path: backup.PendingFile, Kind: backup.KindPending, Pending: entries}, size, wt)
		})
		if err != nil {
			return backup.Manifest{}, err
		}
	}
	if src.embedded != nil {
		err := src.embedded.Backup(ctx, func(c embedded.Copy) error {
			aw.SetHead(backup.Position{Commit: c.Head.Commit, Prepare: c.Head.Prepare})
			return aw.Add(backup.File{Path: backup.EventsFile, Kind: backup.KindEvents}, c.Size, c)
		})
		if err != nil {
			return backup.Manifest{}, err
		}
	} else if src.store != nil {
		head, err := src.store.Head(ctx)
		if err != nil {
			return backup.Manifest{}, fmt.Errorf("the head of the event log: %w", err)
		}
		aw.SetHead(backup.Position{Commit: head.Commit, Prepare: head.Prepare})
	}
	return aw.Close()
}

// runBackup: callguard backup --out FILE|-.
func runBackup(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("backup", "backup --out FILE.tar.gz|-", stderr)
	out := flags.String("out", "", "the archive to write: a new file (never overwritten), or - for stdout")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	if err := wantArgs(flags, pos, 0); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"--out FILE is required (- writes the archive to stdout)"}
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	report := stdout
	var (
		dst  io.Writer = stdout
		tmp  *os.File
		done bool
	)
	if *out == "-" {
		if f, ok := stdout.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				return usageError{"--out - writes a gzipped archive to stdout, which is a terminal: redirect it (> FILE, | ssh ...) or give --out FILE"}
			}
		}
		report = stderr
	} else {
		if _, err := os.Lstat(*out); err == nil {
			return fmt.Errorf("%s exists: a backup never overwrites a file; give a new name", *out)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		tmp, err = os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".partial-*")
		if err != nil {
			return fmt.Errorf("create the archive: %w", err)
		}
		defer func() {
			if !done {
				_ = tmp.Close()
				_ = os.Remove(tmp.Name())
			}
		}()
		dst = tmp
	}
	bw := bufio.NewWriterSize(dst, 1<<20)
	m, via, err := takeBackup(ctx, cfg, stderr, bw)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write the archive: %w", err)
	}
	size := int64(0)
	if tmp != nil {
		st, err := tmp.Stat()
		if err != nil {
			return err
		}
		size = st.Size()
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("write the archive: %w", err)
		}
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("write the archive: %w", err)
		}
		if err := placeNew(tmp.Name(), *out); err != nil {
			return err
		}
		done = true
	}
	return writeBackupReport(report, *out, size, via, m)
}

// placeNew renames tmp to name unless name exists (a link cannot
// overwrite), and syncs the directory.
func placeNew(tmp, name string) error {
	if err := os.Link(tmp, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s appeared while the backup was written: it is left alone; give a new name", name)
		}
		return fmt.Errorf("name the archive %s: %w", name, err)
	}
	if err := os.Remove(tmp); err != nil {
		return err
	}
	return syncDir(filepath.Dir(name))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// takeBackup writes the archive to w, from the running guard or directly
// from the data directory by withStore's rule (reach.go), and checks it
// as it goes: what it returns is the manifest of an archive read back
// whole. via says where it came from.
func takeBackup(ctx context.Context, cfg Config, stderr io.Writer, w io.Writer) (backup.Manifest, string, error) {
	pr, pw := io.Pipe()
	type checked struct {
		m   backup.Manifest
		err error
	}
	check := make(chan checked, 1)
	go func() {
		m, err := backup.Read(pr, nil)
		_, _ = io.Copy(io.Discard, pr) // never leave the writer hanging
		check <- checked{m, err}
	}()
	via, err := backupTo(ctx, cfg, stderr, io.MultiWriter(w, pw))
	pw.CloseWithError(err)
	c := <-check
	if err != nil {
		return backup.Manifest{}, "", err
	}
	if c.err != nil {
		return backup.Manifest{}, "", fmt.Errorf("the archive %s made does not read back whole: %w", via, c.err)
	}
	return c.m, via, nil
}

func backupTo(ctx context.Context, cfg Config, stderr io.Writer, w io.Writer) (string, error) {
	viaGuard := func(tried string) (string, error) {
		return askGuard(cfg, stderr, tried, func(c *adminClient) (string, error) {
			hc := *c.HTTP
			hc.Timeout = 0 // as long as the archive takes; ctx still ends it
			c.HTTP = &hc
			return "the guard at " + c.BaseURL, c.Backup(ctx, w)
		})
	}
	if cfg.AdminURL != "" {
		return viaGuard("")
	}
	if _, err := os.Stat(cfg.DataDir); errors.Is(err, fs.ErrNotExist) {
		return viaGuard(fmt.Sprintf("no data directory %s (%sDATA_DIR)", cfg.DataDir, envPrefix))
	}
	kind := storeKind(cfg)
	if kind == backup.StoreEmbedded {
		if ok, err := storeExists(cfg.DataDir); err != nil {
			return "", err
		} else if !ok {
			return viaGuard(fmt.Sprintf("no event store in %s (%sDATA_DIR)", cfg.DataDir, envPrefix))
		}
	}
	held := fmt.Sprintf("a guard holds %s (%sDATA_DIR)", cfg.DataDir, envPrefix)
	log := newLogger(io.Discard, cfg)
	store, err := openStore(ctx, cfg, log)
	if errors.Is(err, events.ErrLocked) {
		return viaGuard(held)
	}
	if err != nil {
		return "", err
	}
	defer store.Close()
	src := backupSources{kind: kind, store: store}
	src.embedded, _ = store.(*embedded.Store)
	// Open only what is there: a backup creates nothing.
	if _, err := os.Stat(filepath.Join(cfg.DataDir, spool.FileName)); err == nil {
		sp, err := spool.Open(filepath.Join(cfg.DataDir, spool.FileName))
		if errors.Is(err, events.ErrLocked) {
			return viaGuard(held)
		}
		if err != nil {
			return "", err
		}
		defer sp.Close()
		src.spool = sp
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, runner.DirName)); err == nil {
		rs, err := openReadSide(ctx, cfg, store, log)
		if errors.Is(err, runner.ErrLocked) {
			return viaGuard(held)
		}
		if err != nil {
			return "", err
		}
		defer rs.Close()
		src.runner = rs.Runner
	}
	via := "the data directory " + cfg.DataDir + " (no guard holds it)"
	_, err = writeBackup(ctx, w, src)
	return via, err
}

// writeBackupReport says what a backup holds.
func writeBackupReport(w io.Writer, out string, size int64, via string, m backup.Manifest) error {
	where := "backup written to stdout"
	if out != "-" {
		where = fmt.Sprintf("backup written to %s (%s)", out, humanBytes(size))
	}
	fmt.Fprintf(w, "%s, read back whole: from %s at %s\n", where, via, m.Created.Format(time.RFC3339))
	if err := writeContents(w, m); err != nil {
		return err
	}
	if m.Store.Kind != backup.StoreEmbedded {
		fmt.Fprint(w, databaseCaveat(m))
	}
	return nil
}

// writeContents lists an archive's files: what each is and where it stands.
func writeContents(w io.Writer, m backup.Manifest) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range m.Files {
		var what string
		switch f.Kind {
		case backup.KindEvents:
			what = fmt.Sprintf("event log, up to event %v", m.Store.Head)
		case backup.KindProjection:
			what = fmt.Sprintf("projection %s, up to event %v", f.Projection, *f.Checkpoint)
			if f.Checkpoint.Commit < m.Store.Head.Commit && m.Store.Kind == backup.StoreEmbedded {
				what += fmt.Sprintf(" (%d behind the log: it catches up at start)", m.Store.Head.Commit-f.Checkpoint.Commit)
			}
		case backup.KindPending:
			what = fmt.Sprintf("pending spool, %s not yet recorded", plural(f.Pending, "call", "calls"))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Path, humanBytes(f.Size), what)
	}
	return tw.Flush()
}

// databaseCaveat says that a database server's log is not in the archive.
func databaseCaveat(m backup.Manifest) string {
	name, tool := "PostgreSQL", "pg_dump (or your PostgreSQL backups)"
	if m.Store.Kind == backup.StoreEventStoreDB {
		name, tool = "EventStoreDB", "EventStoreDB's own backup (a copy of its database files)"
	}
	return fmt.Sprintf("the event log is NOT in this archive: it is in %s (head %v when this backup was taken);\n"+
		"  back it up with %s, after this backup. The projections rebuild from the log anyway\n"+
		"  (callguard projections rebuild), should the database come back older than them.\n", name, m.Store.Head, tool)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// runRestore: callguard restore --from FILE [--data-dir DIR].
func runRestore(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("restore", "restore --from FILE.tar.gz [--data-dir DIR]", stderr)
	from := flags.String("from", "", "the backup archive")
	dir := flags.String("data-dir", "", "the directory to restore into: new or empty (default: "+envPrefix+"DATA_DIR)")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	if err := wantArgs(flags, pos, 0); err != nil {
		return err
	}
	if *from == "" {
		return usageError{"--from FILE is required"}
	}
	if *dir == "" {
		cfg, err := loadConfig(environ)
		if err != nil {
			return err
		}
		*dir = cfg.DataDir
	}
	target := filepath.Clean(*dir)
	f, err := os.Open(*from)
	if err != nil {
		return err
	}
	defer f.Close()
	// Everything is checked before anything is written.
	m, err := backup.Read(bufio.NewReaderSize(f, 1<<20), nil)
	if err != nil {
		return fmt.Errorf("%s: %w", *from, err)
	}
	if err := mustBeEmpty(target); err != nil {
		return err
	}
	parent := filepath.Dir(target)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(target)+".restore-*")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	placed := false
	defer func() {
		if !placed {
			_ = os.RemoveAll(tmp)
		}
	}()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	// Read again, writing this time; the checks run again too, so a file
	// that changed in between is refused as well.
	if _, err := backup.Read(bufio.NewReaderSize(f, 1<<20), func(path string, _ int64, r io.Reader) error {
		return writeRestored(filepath.Join(tmp, filepath.FromSlash(path)), r)
	}); err != nil {
		return fmt.Errorf("%s: %w", *from, err)
	}
	for _, file := range m.Files {
		if err := checkBolt(filepath.Join(tmp, filepath.FromSlash(file.Path))); err != nil {
			return fmt.Errorf("%s: %s: %w", *from, file.Path, err)
		}
	}
	for _, d := range []string{filepath.Join(tmp, runner.DirName), tmp} {
		if err := syncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	// An empty target goes first (Remove refuses one that filled up
	// meanwhile); the restored directory takes its place in one rename.
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restore into %s: %w", target, err)
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("restore into %s: %w", target, err)
	}
	placed = true
	if err := syncDir(parent); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s into %s: backup of %s by callguard %s\n", *from, target, m.Created.Format(time.RFC3339), m.Version)
	if err := writeContents(stdout, m); err != nil {
		return err
	}
	if m.Store.Kind != backup.StoreEmbedded {
		fmt.Fprintf(stdout, "the event log was not in the archive: restore it into %s with the database's own tools;\n"+
			"  if it comes back older than the projections (head %v here), run callguard projections rebuild.\n", storeName(m.Store.Kind), m.Store.Head)
	}
	fmt.Fprintf(stdout, "start the guard with %sDATA_DIR=%s; the projections catch up with the log as it starts.\n"+
		"The admin token is not in a backup: set %sADMIN_TOKEN, or the guard draws a new one.\n", envPrefix, target, envPrefix)
	return nil
}

func storeName(kind string) string {
	if kind == backup.StoreEventStoreDB {
		return "EventStoreDB"
	}
	return "PostgreSQL"
}

// mustBeEmpty refuses a directory with anything in it: a restore never
// mixes with a data directory, least of all a running guard's.
func mustBeEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("restore into %s: %w", dir, err)
	case len(entries) > 0:
		names := make([]string, 0, 3)
		for _, e := range entries[:min(3, len(entries))] {
			names = append(names, e.Name())
		}
		return fmt.Errorf("%s is not empty (%s): a restore goes into a new or empty directory, never over a data directory (a running guard's least of all); restore elsewhere and point %sDATA_DIR at it",
			dir, strings.Join(names, ", "), envPrefix)
	}
	return nil
}

// writeRestored writes one file of the archive, synced.
func writeRestored(path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// checkBolt opens a restored database read-only and checks its pages: the
// hashes say the file is the one copied, this that the copy is a sound
// database.
func checkBolt(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
			if len(errs) == 5 {
				break
			}
		}
		return errors.Join(errs...)
	})
}
