package testenv

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartRedisCluster starts n (at least 3) redis-servers in cluster mode,
// joins them into one cluster of n masters with no replicas, and waits until
// every node reports the cluster healthy. The servers stop when the test
// ends; each keeps its nodes.conf in its own Dir, so Stop and Start rejoin.
func StartRedisCluster(t testing.TB, n int) []*Redis {
	t.Helper()
	if n < 3 {
		t.Fatalf("a Redis Cluster needs at least 3 masters, not %d", n)
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli is not installed (apt-get install -y redis-tools), and cluster tests need it")
	}
	nodes := make([]*Redis, n)
	create := []string{"--cluster", "create"}
	for i := range nodes {
		// The cluster bus port defaults to port+10000, which overflows for
		// the high ports FreePort often returns: pick it explicitly.
		nodes[i] = StartRedis(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(FreePort(t)),
			"--cluster-node-timeout", "5000",
		)
		create = append(create, nodes[i].Addr())
	}
	create = append(create, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", create...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	want := []string{"cluster_state:ok", "cluster_slots_ok:16384", "cluster_known_nodes:" + strconv.Itoa(n)}
	for _, node := range nodes {
		c := node.Client()
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if ctx.Err() != nil {
				t.Fatalf("cluster node %s did not become healthy: %v\n%s", node.Addr(), err, info)
			}
			ok := err == nil
			for _, w := range want {
				ok = ok && strings.Contains(info, w)
			}
			if ok {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}

// ClusterURL is the storage URL of a cluster started by
// [StartRedisCluster]: one seed node, flagged as a cluster.
func ClusterURL(nodes []*Redis) string { return nodes[0].URL() + "?cluster=true" }
