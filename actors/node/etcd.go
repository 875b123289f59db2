package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	etcdprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdBaseKey is the etcd prefix under which members register, each as
// EtcdBaseKey/<cluster name>/<cluster name>@<actor system id>, a key
// bound to the member's lease.
const EtcdBaseKey = "/protoactor"

// EtcdLeaseTTL is the lease protoactor-go's etcd provider grants each
// member. It is fixed in the library (a private field): a member that dies
// without leaving is removed from the others' member lists this long after
// its last keepalive.
const EtcdLeaseTTL = 3 * time.Second

// EtcdConfig describes how to reach etcd.
type EtcdConfig struct {
	// Endpoints are etcd client URLs (http://host:2379).
	Endpoints []string
	// DialTimeout bounds connecting and the start-up check. Zero means 5 s.
	DialTimeout time.Duration
	// ProbeEvery is how often a watch checks that etcd answers and that
	// the node's key is there. Zero means 1 s.
	ProbeEvery time.Duration
	// Logger receives the watch's reports.
	Logger *slog.Logger
	// PauseLimit is the gap in the node's own timing past which it
	// suspects it was paused and fences its grains until etcd confirms
	// its registration (see Watch.Fence). Zero means DefaultPauseLimit;
	// keep it well under EtcdLeaseTTL.
	PauseLimit time.Duration
	// PauseTick is how often the pause detector ticks. Zero means
	// DefaultPauseTick.
	PauseTick time.Duration
	// Clock is the time the pause detector reads; time.Now when nil
	// (whose monotonic reading measures the gaps).
	Clock func() time.Time
}

// Etcd is membership kept in etcd: protoactor-go's etcd provider, which
// registers the node under a lease and watches the others, plus a client
// of this package's own that watches the node's own registration (see
// Watch) and removes it when the node stops (Close).
//
// Both clients connect only once the node's remoting has started:
// protoactor's remote.Start replaces gRPC's process-wide logger, which a
// gRPC client already running would be reading.
type Etcd struct {
	cfg EtcdConfig
	log *slog.Logger

	mu       sync.Mutex
	client   *clientv3.Client
	provider *etcdprovider.Provider
	key      string
	// members lists the member IDs in protoactor's member list of the
	// node started with this provider (see Watch.Ready).
	members func() []string
	// watch is the running Watch, for Fence.
	watch atomic.Pointer[Watch]
}

// NewEtcd prepares etcd membership; the node connects when it starts
// (node.Start fails when etcd does not answer).
func NewEtcd(cfg EtcdConfig) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: no etcd endpoints", ErrConfig)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = time.Second
	}
	if cfg.PauseLimit <= 0 {
		cfg.PauseLimit = DefaultPauseLimit
	}
	if cfg.PauseTick <= 0 {
		cfg.PauseTick = DefaultPauseTick
	}
	if cfg.PauseTick >= cfg.PauseLimit {
		return nil, fmt.Errorf("%w: pause tick %v is not under the pause limit %v", ErrConfig, cfg.PauseTick, cfg.PauseLimit)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Etcd{cfg: cfg, log: log}, nil
}

// Provider is the membership provider to put in Config.Provider, for one
// node.
func (e *Etcd) Provider() cluster.ClusterProvider { return etcdMember{e} }

// connect opens the watch's client and protoactor's provider, once etcd
// has answered a linearizable read (so a quorum is up): protoactor's
// provider would otherwise block forever in StartMember.
func (e *Etcd) connect(c *cluster.Cluster) (*etcdprovider.Provider, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.provider != nil {
		return nil, fmt.Errorf("etcd membership serves one node and has started already")
	}
	// The etcd client logs through zap at info level; its retries would
	// flood the node's log while etcd is away, and the watch reports what
	// matters in the node's own words.
	ccfg := clientv3.Config{Endpoints: e.cfg.Endpoints, DialTimeout: e.cfg.DialTimeout, Logger: zap.NewNop()}
	client, err := clientv3.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w", e.cfg.Endpoints, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.DialTimeout)
	defer cancel()
	if _, err := client.Get(ctx, EtcdBaseKey, clientv3.WithCountOnly()); err != nil {
		return nil, errors.Join(fmt.Errorf("etcd %v does not answer: %w", e.cfg.Endpoints, err), client.Close())
	}
	provider, err := etcdprovider.NewWithConfig(EtcdBaseKey, ccfg)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("etcd provider: %w", err), client.Close())
	}
	name := c.Config.Name
	e.client, e.provider, e.key = client, provider, EtcdBaseKey+"/"+name+"/"+name+"@"+c.ActorSystem.ID
	e.members = func() []string {
		var ids []string
		for _, m := range c.MemberList.Members().Members() {
			ids = append(ids, m.Id)
		}
		return ids
	}
	return provider, nil
}

// Close removes the node's registration, so that the others see it leave
// at once rather than when its lease expires, and closes the watch's
// client. Call it after Node.Stop: a non-graceful stop leaves the
// provider registered. protoactor's client keeps the lease alive until
// the process exits; the key is gone, so nobody routes to it.
func (e *Etcd) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.DialTimeout)
	defer cancel()
	var errs []error
	if _, err := e.client.Delete(ctx, e.key); err != nil {
		errs = append(errs, fmt.Errorf("leave etcd (the registration expires with its lease): %w", err))
	}
	if err := e.client.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close etcd client: %w", err))
	}
	e.client = nil
	return errors.Join(errs...)
}

// MemberKey is the etcd key under which a node registers.
func MemberKey(n *Node) string {
	name := n.Cluster.Config.Name
	return EtcdBaseKey + "/" + name + "/" + name + "@" + n.System.ID
}

// etcdMember is the provider a node starts with: it connects on start.
type etcdMember struct{ e *Etcd }

func (m etcdMember) StartMember(c *cluster.Cluster) error {
	p, err := m.e.connect(c)
	if err != nil {
		return err
	}
	return p.StartMember(c)
}

func (m etcdMember) StartClient(c *cluster.Cluster) error {
	p, err := m.e.connect(c)
	if err != nil {
		return err
	}
	return p.StartClient(c)
}

// Shutdown (called on a graceful stop only) bounds the provider's, which
// deletes the node's key without a deadline: with etcd's quorum lost it
// would block the node's exit forever. The key then expires with its
// lease.
func (m etcdMember) Shutdown(graceful bool) error {
	m.e.mu.Lock()
	p := m.e.provider
	m.e.mu.Unlock()
	if p == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(graceful) }()
	select {
	case err := <-done:
		return err
	case <-time.After(m.e.cfg.DialTimeout):
		return fmt.Errorf("leave etcd: no answer in %v; the registration expires with its lease", m.e.cfg.DialTimeout)
	}
}

// ErrMembershipLost is the sentinel of the reason a Watch gives when the
// node's registration is gone while etcd answers.
var ErrMembershipLost = errors.New("cluster membership lost")

// Watch watches a node's own registration in etcd. protoactor-go does not
// (its issue #1133): a member whose lease expired, say after a pause
// longer than the TTL, has been removed by the others and its numbers
// re-activated elsewhere, yet it keeps its own stale activations. The
// watch tells such a node apart from one whose etcd is merely away:
//
//   - the key is deleted (lease expired or revoked, or the key removed)
//     while etcd answers: the membership is lost for good; Lost closes
//     and Err says why. The owner stops the node's grains and exits so
//     that a supervisor starts it again with a new identity.
//   - etcd does not answer (quorum lost, network): nothing is decided.
//     The node keeps its last known member list (every member's
//     keepalive fails alike, and the leases outlive a leaderless etcd);
//     Ready reports the outage until etcd answers again.
type Watch struct {
	key     string
	client  *clientv3.Client
	every   time.Duration
	log     *slog.Logger
	lost    chan struct{}
	lostErr error
	once    sync.Once
	mu      sync.Mutex
	unready error
	cancel  context.CancelFunc
	done    chan struct{}
	// created is the key's create revision when first read; a later read
	// finding another means it was deleted and put again in between
	// (protoactor re-registers about a second after a lease expires).
	created int64
	// seen is the last etcd revision the watch or the probe looked at.
	seen atomic.Int64
	// members lists the member IDs of protoactor's member list; agreed is
	// set once it matched the members registered in etcd (see Ready), and
	// disagreement says how it differed until then.
	members      func() []string
	agreed       atomic.Bool
	disagreement error
	// The pause detector (see Fence); wake asks run for a probe now.
	now       func() time.Time
	pause     *pauseDetector
	pauseTick time.Duration
	wake      chan struct{}
}

// Watch starts watching the registration of the node started with
// e.Provider(), until Stop.
func (e *Etcd) Watch(ctx context.Context) (*Watch, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client == nil {
		return nil, errors.New("watch etcd membership: no node started with this provider")
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watch{
		key: e.key, client: e.client, every: e.cfg.ProbeEvery, members: e.members,
		log: e.log, lost: make(chan struct{}), cancel: cancel, done: make(chan struct{}),
		now: e.cfg.Clock, pause: newPauseDetector(e.cfg.Clock, e.cfg.PauseLimit), pauseTick: e.cfg.PauseTick,
		wake: make(chan struct{}, 1),
	}
	e.watch.Store(w)
	go w.run(ctx)
	return w, nil
}

// Fence is the running Watch's Fence; nil before Watch is called (the
// node has just started, nothing to suspect yet). Grains call it before
// each write.
func (e *Etcd) Fence() error {
	if w := e.watch.Load(); w != nil {
		return w.Fence()
	}
	return nil
}

// Fence is nil while this node may write for the grains it hosts: its
// registration is not lost, and it has not been paused (see
// DefaultPauseLimit) since etcd last confirmed it. Otherwise it returns an
// error wrapping ErrFenced: a grain must then not append, since its lease
// may have expired and its numbers been re-activated elsewhere. etcd
// merely unreachable does not fence (the node goes on with the last known
// members); a pause while etcd is unreachable fences until etcd answers.
func (w *Watch) Fence() error {
	if err := w.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	if err := w.pause.check(); err != nil {
		w.confirmSoon()
		return err
	}
	return nil
}

// confirmSoon asks the watch to read the node's key now.
func (w *Watch) confirmSoon() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// ticks runs the pause detector until ctx ends.
func (w *Watch) ticks(ctx context.Context) {
	t := time.NewTicker(w.pauseTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if w.pause.tick() {
				w.log.Warn("this process was paused or starved for longer than the pause limit: grains fenced until etcd confirms the registration", "key", w.key)
				w.confirmSoon()
			}
		}
	}
}

// Lost is closed once the node's membership is lost for good.
func (w *Watch) Lost() <-chan struct{} { return w.lost }

// Err says why the membership was lost; nil while it is not.
func (w *Watch) Err() error {
	select {
	case <-w.lost:
		return w.lostErr
	default:
		return nil
	}
}

// Ready is nil while etcd answered the last probe and the node is a
// member whose member list has once matched the members registered in
// etcd, else the reason it is not. A node that starts with the others may
// miss one of them in protoactor's watch gap (see touch) until its next
// touch; taking calls then would activate that member's numbers here too,
// so the node is not ready until its view and the registry agree.
func (w *Watch) Ready() error {
	if err := w.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.unready != nil {
		return w.unready
	}
	if !w.agreed.Load() {
		if w.disagreement != nil {
			return w.disagreement
		}
		return errors.New("member list not yet compared with etcd")
	}
	return nil
}

// compareMembers sets agreed once protoactor's member list holds exactly
// the members registered under the cluster's key in etcd.
func (w *Watch) compareMembers(ctx context.Context) {
	if w.members == nil {
		w.agreed.Store(true)
		return
	}
	prefix := w.key[:strings.LastIndex(w.key, "/")+1]
	resp, err := w.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return // the next probe reports etcd away, or tries again
	}
	var registered []string
	for _, kv := range resp.Kvs {
		// The key's last segment is protoactor's member ID (cluster@system).
		registered = append(registered, strings.TrimPrefix(string(kv.Key), prefix))
	}
	seen := w.members()
	missing, extra := memberDiff(registered, seen)
	if len(missing) == 0 && len(extra) == 0 {
		w.agreed.Store(true)
		w.log.Info("member list agrees with etcd", "members", len(seen))
		return
	}
	w.mu.Lock()
	w.disagreement = fmt.Errorf("member list not yet in step with etcd: %d registered, %d known; missing %v, not registered %v", len(registered), len(seen), missing, extra)
	w.mu.Unlock()
}

// Stop ends the watch and waits for it. Call it before the node leaves
// the cluster: leaving deletes the key, which is not a loss.
func (w *Watch) Stop() {
	w.cancel()
	<-w.done
	w.pause.stop()
}

func (w *Watch) loseMembership(format string, args ...any) {
	w.once.Do(func() {
		w.lostErr = fmt.Errorf("%w: "+format, append([]any{ErrMembershipLost}, args...)...)
		w.log.Error("cluster membership lost", "key", w.key, "reason", w.lostErr)
		close(w.lost)
	})
}

func (w *Watch) setUnready(err error) {
	w.mu.Lock()
	was := w.unready
	w.unready = err
	w.mu.Unlock()
	switch {
	case err != nil && was == nil:
		w.log.Warn("etcd does not answer: deciding with the last known members", "err", err)
	case err == nil && was != nil:
		w.log.Info("etcd answers again")
	}
}

// run probes the key every w.every, and watches it in between so that a
// deletion is seen at once. The watch has a goroutine of its own: opening
// one waits for etcd, and the probes must go on meanwhile to report etcd
// away.
func (w *Watch) run(ctx context.Context) {
	defer close(w.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { w.ticks(ctx) })
	for w.seen.Load() == 0 { // the first good read starts the watch
		w.probe(ctx)
		if w.seen.Load() != 0 {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-w.lost:
			return
		case <-w.wake:
		case <-time.After(w.every):
		}
	}
	wg.Go(func() { w.watch(ctx) })
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	touchEvery := touchFirst
	touch := time.NewTimer(touchEvery)
	defer touch.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.lost:
			return
		case <-tick.C:
			w.probe(ctx)
		case <-w.wake:
			w.probe(ctx)
		case <-touch.C:
			w.touch(ctx)
			touchEvery = min(2*touchEvery, touchMax)
			touch.Reset(touchEvery)
		}
	}
}

// The registration is touched (see Watch.touch) touchFirst after the watch
// starts, then at doubling intervals up to touchMax: often while the
// cluster's members start, when views are missed, and seldom after (each
// touch is an etcd revision).
const (
	touchFirst = time.Second
	touchMax   = time.Minute
)

// touch puts the node's key again, keeping its value and lease: a Put
// event for every member's watch, nothing else changes. protoactor-go's
// etcd provider reads the members, then opens its watch from whatever
// revision etcd has reached by the time its goroutine runs (no WithRev):
// a member that registers in between is missed by that node for good.
// That node then places the member's numbers on another node while the
// member places them on itself: two live activations of one caller,
// writing in turn (seen on a loaded machine when three nodes started
// together). The event adds the member to such a view. The put fails
// rather than creating a key that is gone (the probe reports that).
func (w *Watch) touch(ctx context.Context) {
	tctx, cancel := context.WithTimeout(ctx, w.every+w.every/2)
	defer cancel()
	if _, err := w.client.Put(tctx, w.key, "", clientv3.WithIgnoreValue(), clientv3.WithIgnoreLease()); err != nil && ctx.Err() == nil {
		w.log.Debug("touch the registration", "key", w.key, "err", err)
	}
}

// watch follows the key's events from the last revision seen on, opening
// the watch again whenever it ends (no leader, etcd away, compaction).
func (w *Watch) watch(ctx context.Context) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range w.client.Watch(wctx, w.key, clientv3.WithRev(w.seen.Load()+1)) {
			if resp.CompactRevision > 0 {
				w.seen.Store(resp.CompactRevision - 1) // what was before is gone
			}
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					w.loseMembership("key %s deleted at etcd revision %d (lease expired or revoked)", w.key, ev.Kv.ModRevision)
					cancel()
					return
				}
			}
			if resp.Header.Revision > w.seen.Load() {
				w.seen.Store(resp.Header.Revision)
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(w.every):
		}
	}
}

// probe reads the key (linearizably, so a quorum answers): etcd not
// answering makes the node unready, the key missing or created anew means
// the membership is lost.
func (w *Watch) probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, w.every+w.every/2)
	defer cancel()
	started := w.now()
	resp, err := w.client.Get(pctx, w.key)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		w.setUnready(fmt.Errorf("etcd unreachable: %w", err))
		return
	}
	w.setUnready(nil)
	switch {
	case len(resp.Kvs) == 0:
		w.loseMembership("key %s is gone at etcd revision %d", w.key, resp.Header.Revision)
		return
	case w.created == 0:
		w.created = resp.Kvs[0].CreateRevision
	case resp.Kvs[0].CreateRevision != w.created:
		w.loseMembership("key %s was deleted and put again (created at etcd revision %d, now %d)", w.key, w.created, resp.Kvs[0].CreateRevision)
		return
	}
	if w.seen.Load() == 0 {
		w.seen.Store(resp.Header.Revision)
	}
	if w.pause.confirm(started) {
		w.log.Info("etcd confirms the registration after a pause: grains write again", "key", w.key)
	}
	if !w.agreed.Load() {
		w.compareMembers(pctx)
	}
}

// memberDiff returns the registered IDs missing from seen and the seen IDs
// not registered, each sorted.
func memberDiff(registered, seen []string) (missing, extra []string) {
	for _, id := range registered {
		if !slices.Contains(seen, id) {
			missing = append(missing, id)
		}
	}
	for _, id := range seen {
		if !slices.Contains(registered, id) {
			extra = append(extra, id)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return missing, extra
}
