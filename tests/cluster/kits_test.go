package cluster

import (
	"context"
	"strings"
	"testing"

	"github.com/callguard/callguard/actors/node/etcdtest"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/postgres"
	"github.com/callguard/callguard/events/postgres/pgtest"
)

// etcdKit is the scenario's etcd: one member, or three.
type etcdKit struct {
	cluster *etcdtest.Cluster
}

func startEtcd(t *testing.T, _ string, members int) *etcdKit {
	t.Helper()
	if _, err := etcdtest.Binary(); err != nil {
		t.Skipf("skipping the failure suite: %v", err)
	}
	return &etcdKit{cluster: etcdtest.NewCluster(t, members)}
}

func (e *etcdKit) env() []string {
	return []string{
		"GUARD_CLUSTER_PROVIDER=etcd",
		"GUARD_ETCD_ENDPOINTS=" + strings.Join(e.cluster.Endpoints(), ","),
	}
}

// pgKit is the scenario's PostgreSQL server.
type pgKit struct {
	server *pgtest.Server
}

func startPostgres(t *testing.T, _ string) *pgKit {
	t.Helper()
	if _, err := pgtest.BinDir(); err != nil {
		t.Skipf("skipping the failure suite: %v", err)
	}
	return &pgKit{server: pgtest.Start(t)}
}

func (p *pgKit) env() []string { return []string{"GUARD_POSTGRES_URL=" + p.server.URL()} }

// openStore opens the shared store for the log checks.
func (c *Cluster) openStore(ctx context.Context) (events.Store, error) {
	return postgres.Open(ctx, c.pg.server.URL())
}
