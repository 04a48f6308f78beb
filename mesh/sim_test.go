package mesh

// The seeded simulation of issue 8: honest nodes of three orgs, each a Log
// on its own in-memory store, and Mallory (adversary_test.go), under random
// delivery orders, duplicates, drops, partitions and heals, anti-entropy
// between pairs and restarts. After each schedule everyone is synced and
// the invariants are checked. A failure names its seed; replay it with
//
//	go test ./mesh -run 'TestSimulation$' -sim.seed=N -v
//
// (-v prints the schedule's trace).

import (
	"bytes"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/internal/tamper"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
)

// kvMemFrom returns an in-memory store holding data.
func kvMemFrom(t simTB, data map[string][]byte) *kv.Mem {
	m := kv.NewMem()
	err := m.Update(func(tx kv.Txn) error {
		for k, v := range data {
			if err := tx.Set([]byte(k), bytes.Clone(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var (
	simSeed      = flag.Uint64("sim.seed", 0, "TestSimulation: run only the schedule with this seed")
	simSchedules = flag.Int("sim.schedules", 0, "TestSimulation: number of schedules (seeds first..first+N-1; default 200, 1000 under KEYMESH_EXHAUSTIVE=1 or -exhaustive)")
	simSteps     = flag.Int("sim.steps", 24, "TestSimulation: steps per schedule")
	simNoEquiv   = flag.Bool("sim.noequivocation", false, "TestSimulation: Mallory does not equivocate (to triage other failures)")
	simNoReuse   = flag.Bool("sim.noreuse", false, "TestSimulation: Mallory does not reuse its own grant ids across its own keys")
	simFirst     = flag.Uint64("sim.first", 1, "TestSimulation: first seed")
)

// TestSimulation runs -sim.schedules seeded schedules (or the one of
// -sim.seed) and fails with the seeds of the first failing ones.
func TestSimulation(t *testing.T) {
	t.Parallel()
	seeds := []uint64{*simSeed}
	if *simSeed == 0 {
		seeds = seeds[:0]
		n := *simSchedules
		if n == 0 {
			n = tamper.Count(200, 1000)
		}
		for s := range uint64(n) {
			seeds = append(seeds, *simFirst+s)
		}
	}
	var failed []uint64
	var first string
	for _, seed := range seeds {
		err, trace := simRun(t, seed)
		if err == "" {
			continue
		}
		failed = append(failed, seed)
		if first == "" {
			first = fmt.Sprintf("seed %d: %s", seed, err)
			if testing.Verbose() || len(seeds) == 1 {
				t.Logf("trace of seed %d:\n%s", seed, trace)
			}
		}
		if len(failed) >= 20 && len(seeds) > 1 {
			break
		}
	}
	if len(failed) > 0 {
		t.Fatalf("%d schedules failed (seeds %v); first: %s\nreplay: go test ./mesh -run 'TestSimulation$' -sim.seed=%d -v",
			len(failed), failed, first, failed[0])
	}
}

var simCountHook = func(Verdict, string) {}

// simFail is how a schedule stops on a broken invariant (or a broken
// harness): simRun recovers it and returns it with the seed.
type simFail struct{ msg string }

// simTB is the testing.TB the harness helpers get during a schedule: a
// failure stops the schedule (not the test) so the seed can be reported.
type simTB struct {
	testing.TB
}

func (s simTB) Fatal(args ...any)                 { panic(simFail{fmt.Sprint(args...)}) }
func (s simTB) Fatalf(format string, args ...any) { panic(simFail{fmt.Sprintf(format, args...)}) }
func (s simTB) Error(args ...any)                 { panic(simFail{fmt.Sprint(args...)}) }
func (s simTB) Errorf(format string, args ...any) { panic(simFail{fmt.Sprintf(format, args...)}) }
func (s simTB) Helper()                           {}

type simNode struct {
	*advNode
	inbox [][]byte
	side  int // partition side
}

// simRev is a revocation an owner node issued.
type simRev struct {
	key   string
	party policy.Party
	id    string
}

type sim struct {
	t       simTB
	r       *mrand.Rand
	n       *advNet
	nodes   []*simNode
	ml      *advMallory
	mlSends []uint64 // Mallory's seqs it sent to nobody yet (withheld)
	dereg   bool
	cut     uint64    // the LastSeq of Mallory's deregistration, if dereg
	mlUntil time.Time // Mallory's record's NotAfter
	revs    []simRev
	counter int
	trace   []string
}

func (sm *sim) logf(format string, args ...any) {
	sm.trace = append(sm.trace, fmt.Sprintf("%3ds ", int(sm.n.now.Sub(sm.n.t0).Seconds()))+fmt.Sprintf(format, args...))
}

func (sm *sim) fail(format string, args ...any) { panic(simFail{fmt.Sprintf(format, args...)}) }

func (sm *sim) id() int { sm.counter++; return sm.counter }

// simRun runs one schedule and returns what broke ("" if nothing) and its
// trace.
func simRun(t *testing.T, seed uint64) (failure, trace string) {
	sm := &sim{t: simTB{t}, r: mrand.New(mrand.NewPCG(seed, 0x5eed))}
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(simFail)
			if !ok {
				f = simFail{fmt.Sprintf("panic: %v", p)}
			}
			failure = f.msg
		}
		trace = strings.Join(sm.trace, "\n")
	}()
	sm.setup(seed)
	steps := *simSteps/3 + sm.r.IntN(*simSteps*2/3+1)
	for range steps {
		sm.n.now = sm.n.now.Add(time.Duration(500+sm.r.IntN(1500)) * time.Millisecond)
		sm.step()
	}
	sm.finish()
	sm.check()
	return "", ""
}

// simBase is a network whose honest nodes have registered and synced their
// records: most schedules start from a copy of its stores rather than
// paying, again, for every node to admit every record (each admission
// verifies the admin signature and parses the KEM key, which is most of
// what a schedule costs).
type simBase struct {
	n       *advNet
	members []advMember
	stores  []map[string][]byte
}

var simBases = map[string]*simBase{}

func simBaseFor(t simTB, counts []int, variant uint64) *simBase {
	id := fmt.Sprint(counts, variant)
	if b := simBases[id]; b != nil {
		return b
	}
	b := &simBase{n: newAdvNet(t, 1<<32+variant*16+uint64(counts[0]*9+counts[1]*3+counts[2]))}
	var logs []*Log
	var nodes []*advNode
	for i, o := range advOrgs {
		for range counts[i] {
			h := b.n.node(t, b.n.member(o.id), LogOptions{})
			h.issue(t, event.KindNodeRecord, b.n.defaultRecord(t, h.m))
			b.members = append(b.members, h.m)
			nodes = append(nodes, h)
			logs = append(logs, h.log)
		}
	}
	advSync(logs...)
	for _, h := range nodes {
		m := map[string][]byte{}
		_ = h.store.Scan(nil, func(k, v []byte) error { m[string(k)] = bytes.Clone(v); return nil })
		b.stores = append(b.stores, m)
	}
	simBases[id] = b
	return b
}

func (sm *sim) setup(seed uint64) {
	// 4 honest nodes in 3/4 of the schedules, 5 or 6 in the others (each
	// node admits every record, and a record's admission — admin signature,
	// KEM key — is most of what a schedule costs).
	counts := []int{1, 1, 1}
	total := 4
	if w := sm.r.IntN(12); w == 0 {
		total = 6
	} else if w < 3 {
		total = 5
	}
	for counts[0]+counts[1]+counts[2] < total {
		if i := sm.r.IntN(3); counts[i] < 2 {
			counts[i]++
		}
	}
	warm := sm.r.IntN(6) > 0
	if warm {
		// Honest records already everywhere; Mallory's still travels.
		b := simBaseFor(sm.t, counts, seed%4)
		n := *b.n
		n.now, n.rng = n.t0, mrand.New(mrand.NewPCG(seed, 0xadf))
		sm.n = &n
		for i, m := range b.members {
			store := kvMemFrom(sm.t, b.stores[i])
			h := &advNode{net: sm.n, m: m, store: store, opts: LogOptions{Clock: sm.n.clock, OnVerdict: func(v Verdict, r string) { simCountHook(v, r) }}}
			h.reopen(sm.t)
			sm.nodes = append(sm.nodes, &simNode{advNode: h})
		}
	} else {
		sm.n = newAdvNet(sm.t, seed)
		for i, o := range advOrgs {
			for range counts[i] {
				h := sm.n.node(sm.t, sm.n.member(o.id), LogOptions{OnVerdict: func(v Verdict, r string) { simCountHook(v, r) }})
				sm.nodes = append(sm.nodes, &simNode{advNode: h})
			}
		}
		for _, h := range sm.nodes {
			sm.gossip(h, h.issue(sm.t, event.KindNodeRecord, sm.n.defaultRecord(sm.t, h.m)))
		}
	}
	sm.ml = sm.n.mallory(sm.t, "Org2MSP")
	na := sm.n.t0.Add(24 * time.Hour)
	if sm.r.IntN(4) == 0 {
		na = sm.n.t0.Add(time.Duration(5+sm.r.IntN(30)) * time.Second) // expires during the schedule
	}
	sm.mlUntil = na
	rec := sm.ml.register(sm.t, sm.n.record(sm.t, sm.ml.m, sm.n.t0.Add(-time.Hour), na))
	sm.logf("setup: %v honest nodes (warm %v); Mallory %s, record until %s", counts, warm, sm.ml.m.key, na.Sub(sm.n.t0))
	sm.malSend(rec, 1)
}

// gossip pushes an event from node h to the others on its side, dropping
// some and duplicating some.
func (sm *sim) gossip(from *simNode, raw []byte) {
	for _, h := range sm.nodes {
		if h == from || h.side != from.side || sm.r.IntN(5) == 0 {
			continue
		}
		h.inbox = append(h.inbox, raw)
		if sm.r.IntN(8) == 0 {
			h.inbox = append(h.inbox, raw)
		}
	}
}

// malSend hands Mallory's event to a random subset of honest nodes (any
// side: Mallory is everywhere).
func (sm *sim) malSend(raw []byte, min int) {
	perm := sm.r.Perm(len(sm.nodes))
	k := min + sm.r.IntN(len(sm.nodes)+1-min)
	for _, i := range perm[:k] {
		sm.nodes[i].inbox = append(sm.nodes[i].inbox, raw)
	}
}

func (sm *sim) step() {
	if !sm.dereg && sm.r.IntN(40) == 0 {
		// Org2's admin deregisters Mallory through an honest Org2 node, up
		// to what that node holds of it.
		for _, h := range sm.nodes {
			if h.m.org == "Org2MSP" {
				sm.deregister(h)
				return
			}
		}
	}
	switch w := sm.r.IntN(100); {
	case w < 35:
		sm.honestAction(sm.nodes[sm.r.IntN(len(sm.nodes))])
	case w < 55:
		sm.malloryAction()
	case w < 78:
		sm.deliver(sm.nodes[sm.r.IntN(len(sm.nodes))])
	case w < 90:
		a, b := sm.nodes[sm.r.IntN(len(sm.nodes))], sm.nodes[sm.r.IntN(len(sm.nodes))]
		if a != b && a.side == b.side {
			sm.logf("anti-entropy %s <- %s", a.m.key, b.m.key)
			advPull(a.log, b.log)
		}
	case w < 95:
		if sm.r.IntN(2) == 0 {
			for _, h := range sm.nodes {
				h.side = sm.r.IntN(2)
			}
			sm.logf("partition")
		} else {
			for _, h := range sm.nodes {
				h.side = 0
			}
			sm.logf("heal")
		}
	default:
		h := sm.nodes[sm.r.IntN(len(sm.nodes))]
		sm.logf("restart %s", h.m.key)
		before := h.canon()
		h.reopen(sm.t)
		if !bytes.Equal(before, h.canon()) {
			sm.fail("node %s folds to another state after a restart", h.m.key)
		}
	}
}

// sides returns the honest nodes on each side of the partition.
func (sm *sim) sides() [2][]*simNode {
	var out [2][]*simNode
	for _, h := range sm.nodes {
		out[h.side] = append(out[h.side], h)
	}
	return out
}

// deliver hands some of h's inbox to its log in random order; accepted
// events are forwarded (gossip), with drops.
func (sm *sim) deliver(h *simNode) {
	if len(h.inbox) == 0 {
		return
	}
	sm.r.Shuffle(len(h.inbox), func(i, j int) { h.inbox[i], h.inbox[j] = h.inbox[j], h.inbox[i] })
	k := 1 + sm.r.IntN(len(h.inbox))
	batch := h.inbox[:k]
	h.inbox = slices.Clone(h.inbox[k:])
	var vs []Verdict
	if sm.r.IntN(3) == 0 {
		vs = h.log.DeliverBatch(batch)
	} else {
		for _, raw := range batch {
			vs = append(vs, h.log.Deliver(raw))
		}
	}
	sm.logf("deliver %d to %s: %v", k, h.m.key, vs)
	for i, v := range vs {
		if v == Accept && sm.r.IntN(3) == 0 {
			sm.gossip(h, batch[i]) // forwarded; most forwards are duplicates that gossip's seen-cache drops
		}
	}
}

// view returns what node h sees of keys: names (sorted) of the keys that
// match.
func (sm *sim) view(h *simNode, match func(s *State, k *Key) bool) []string {
	var out []string
	h.log.View(func(s *State) {
		for name, k := range s.Keys {
			if match(s, k) {
				out = append(out, name)
			}
		}
	})
	slices.Sort(out)
	return out
}

func (sm *sim) pick(xs []string) string { return xs[sm.r.IntN(len(xs))] }

var simParties = []policy.Party{"org:Org1MSP", "org:Org2MSP", "org:Org3MSP", "token:app"}

// honestAction has node h do what an admin would through its node, from
// its own view: create, rotate, grant, revoke, change state, destroy, share,
// acknowledge, or (Org2) deregister Mallory.
func (sm *sim) honestAction(h *simNode) {
	now := sm.n.now
	ns := advNamespace(h.m.org)
	own := sm.view(h, func(s *State, k *Key) bool { return k.Created && !k.Destroyed && k.Owner == h.m.org })
	var kind event.Kind
	var payload any
	var att [][]byte
	switch w := sm.r.IntN(100); {
	case w < 20 || len(own) == 0:
		name := fmt.Sprintf("%s/k%d", ns, sm.id())
		if existing := sm.view(h, func(s *State, k *Key) bool { return k.Owner == h.m.org }); len(existing) > 0 && sm.r.IntN(6) == 0 {
			name = sm.pick(existing) // a second create of one name, as two nodes of an org racing
		}
		kind, payload = event.KindKeyCreate, event.KeyCreate{Key: name, Exportable: sm.r.IntN(2) == 0, PreActive: sm.r.IntN(5) == 0}
	case w < 35:
		name := sm.pick(own)
		var version uint32
		var recipients []network.NodeKey
		h.log.View(func(s *State) {
			version = uint32(len(s.Keys[name].Versions)) + 1
			recipients = s.Recipients(name, now)
		})
		kv := event.KeyVersion{Key: name, Version: version, ActivateAt: now}
		for i, r := range recipients {
			blob, check := advBlob(sm.r)
			if i == 0 {
				kv.Check = check
			}
			kv.Wraps = append(kv.Wraps, event.Wrap{Recipient: r, Digest: event.DigestOf(blob)})
			att = append(att, blob)
		}
		if kv.Check == (event.Digest{}) {
			_, kv.Check = advBlob(sm.r)
		}
		kind, payload = event.KindKeyVersion, kv
	case w < 55:
		name := sm.pick(own)
		party := simParties[sm.r.IntN(len(simParties))]
		g := policy.Grant{ID: fmt.Sprintf("%sg%d", IDPrefix(h.m.key), sm.id()), Key: name, Party: party, Ops: policy.OpsAll, Issuer: "sim", IssuedAt: now}
		if party.Kind() != policy.KindOrg {
			g.Custodian = h.m.org
		}
		h.log.View(func(s *State) { g.Observed = s.Policy.RevocationIDs(name, party) })
		kind, payload = event.KindGrant, g
	case w < 70:
		name := sm.pick(own)
		party := simParties[sm.r.IntN(len(simParties))]
		h.log.View(func(s *State) {
			if gs := s.Policy.Grants(name); len(gs) > 0 && sm.r.IntN(3) > 0 {
				party = gs[sm.r.IntN(len(gs))].Grant.Party
			}
		})
		rv := policy.Revocation{ID: fmt.Sprintf("%sr%d", IDPrefix(h.m.key), sm.id()), Key: name, Party: party, Issuer: "sim", IssuedAt: now}
		sm.revs = append(sm.revs, simRev{key: name, party: party, id: rv.ID})
		kind, payload = event.KindRevoke, rv
	case w < 80:
		states := []string{event.StateActive, event.StateDeactivated, event.StateCompromised}
		name := sm.pick(own)
		var min uint32
		h.log.View(func(s *State) { min = uint32(sm.r.IntN(len(s.Keys[name].Versions) + 1)) })
		kind, payload = event.KindKeyState, event.KeyState{Key: name, State: states[sm.r.IntN(len(states))], MinDecryptionVersion: min}
	case w < 84:
		kind, payload = event.KindKeyDestroy, event.KeyDestroy{Key: sm.pick(own)}
	case w < 92:
		// Share a version h holds with an entitled recipient lacking it.
		var ks event.KeyShare
		h.log.View(func(s *State) {
			names := make([]string, 0, len(s.Keys))
			for name := range s.Keys {
				names = append(names, name)
			}
			slices.Sort(names)
			for _, name := range names {
				k := s.Keys[name]
				if k.Destroyed || !s.Entitled(name, h.m.key) {
					continue
				}
				for _, v := range k.Versions {
					if !v.Holds(h.m.key) {
						continue
					}
					for _, r := range s.Recipients(name, now) {
						if !v.Holds(r) && len(ks.Shares) < 3 {
							blob, _ := advBlob(sm.r)
							ks.Key = name
							ks.Shares = append(ks.Shares, event.Share{Version: v.N, ActivateAt: v.ActivateAt, Wrap: event.Wrap{Recipient: r, Digest: event.DigestOf(blob)}})
							att = append(att, blob)
						}
					}
					if len(ks.Shares) > 0 {
						return
					}
				}
			}
		})
		if len(ks.Shares) == 0 {
			return
		}
		kind, payload = event.KindKeyShare, ks
	case w < 96:
		destroyed := sm.view(h, func(s *State, k *Key) bool { return k.Destroyed && k.Holders[h.m.key] && !k.Acks[h.m.key] })
		if len(destroyed) == 0 {
			return
		}
		kind, payload = event.KindDestroyAck, event.DestroyAck{Key: sm.pick(destroyed)}
	default:
		if h.m.org != "Org2MSP" || sm.dereg {
			return
		}
		sm.deregister(h)
		return
	}
	raw := h.issue(sm.t, kind, payload, att...)
	sm.logf("%s issues %s %s", h.m.key, kind, simBrief(payload))
	sm.gossip(h, raw)
}

func (sm *sim) deregister(h *simNode) {
	last := h.log.Summary()[IssuerID(sm.ml.m.key)]
	sm.dereg, sm.cut = true, last
	raw := h.issue(sm.t, event.KindDeregister, sm.n.deregister(sm.t, "Org2MSP", sm.ml.m.key, last))
	sm.logf("%s issues the deregistration of Mallory after %d", h.m.key, last)
	sm.gossip(h, raw)
}

func simBrief(p any) string {
	switch v := p.(type) {
	case event.KeyCreate:
		return v.Key
	case event.KeyVersion:
		return fmt.Sprintf("%s v%d (%d wraps)", v.Key, v.Version, len(v.Wraps))
	case event.KeyShare:
		return fmt.Sprintf("%s (%d shares)", v.Key, len(v.Shares))
	case event.KeyState:
		return fmt.Sprintf("%s %s min %d", v.Key, v.State, v.MinDecryptionVersion)
	case event.KeyDestroy:
		return v.Key
	case event.DestroyAck:
		return v.Key
	case policy.Grant:
		return fmt.Sprintf("%s %s %s observed %v", v.ID, v.Key, v.Party, v.Observed)
	case policy.Revocation:
		return fmt.Sprintf("%s %s %s", v.ID, v.Key, v.Party)
	case network.Deregister:
		return fmt.Sprintf("%s after %d", v.SignKey, v.LastSeq)
	}
	return fmt.Sprintf("%T", p)
}

// malloryAction: Mallory, reading a random honest node's log, signs a
// hostile event and hands it to some nodes.
func (sm *sim) malloryAction() {
	spy := sm.nodes[sm.r.IntN(len(sm.nodes))]
	now := sm.n.now
	pm := IDPrefix(sm.ml.m.key)
	foreign := sm.view(spy, func(s *State, k *Key) bool { return k.Created && k.Owner != "Org2MSP" })
	ownKeys := sm.view(spy, func(s *State, k *Key) bool { return k.Created && k.Owner == "Org2MSP" })
	target := fmt.Sprintf("%s/k%d", advNamespace([]string{"Org1MSP", "Org3MSP"}[sm.r.IntN(2)]), sm.r.IntN(sm.counter+1))
	if len(foreign) > 0 && sm.r.IntN(4) > 0 {
		target = sm.pick(foreign)
	}
	// Honest ids seen, to reuse.
	var grantIDs, revIDs []string
	var grantParties []policy.Party
	spy.log.View(func(s *State) {
		names := make([]string, 0, len(s.Keys))
		for name := range s.Keys {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			for _, st := range s.Policy.Grants(name) {
				grantIDs = append(grantIDs, st.Grant.ID)
				grantParties = append(grantParties, st.Grant.Party)
			}
			for _, r := range s.Policy.Revocations(name) {
				revIDs = append(revIDs, r.ID)
			}
		}
	})
	reuse := func(ids []string) string {
		if len(ids) > 0 && sm.r.IntN(2) == 0 {
			return ids[sm.r.IntN(len(ids))]
		}
		return fmt.Sprintf("%sx%d", pm, sm.id())
	}
	e := advEv{}
	switch w := sm.r.IntN(100); {
	case w < 12:
		e.Kind, e.Payload = event.KindKeyCreate, event.KeyCreate{Key: target, Exportable: true}
	case w < 22:
		blob, check := advBlob(sm.r)
		var version uint32 = 1
		spy.log.View(func(s *State) {
			if k := s.Keys[target]; k != nil && sm.r.IntN(2) == 0 {
				version = uint32(len(k.Versions)) + 1
			}
		})
		e.Kind, e.Payload, e.Att = event.KindKeyVersion, event.KeyVersion{Key: target, Version: version, ActivateAt: now, Check: check,
			Wraps: []event.Wrap{{Recipient: sm.ml.m.key, Digest: event.DigestOf(blob)}}}, [][]byte{blob}
	case w < 30:
		e.Kind, e.Payload = event.KindKeyState, event.KeyState{Key: target, State: event.StateCompromised, MinDecryptionVersion: 9}
	case w < 36:
		e.Kind, e.Payload = event.KindKeyDestroy, event.KeyDestroy{Key: target}
	case w < 48:
		party := policy.Party("token:evil")
		if sm.r.IntN(2) == 0 {
			party = "org:Org2MSP"
		}
		e.Kind, e.Payload = event.KindGrant, policy.Grant{ID: reuse(grantIDs), Key: target, Party: party, Ops: policy.OpsAll, Issuer: "m", IssuedAt: sm.n.t0, Observed: revIDs}
	case w < 60:
		party := policy.Party("org:Org3MSP")
		if len(grantParties) > 0 {
			party = grantParties[sm.r.IntN(len(grantParties))]
		}
		key := target
		if len(ownKeys) > 0 && sm.r.IntN(2) == 0 {
			key = sm.pick(ownKeys) // an honest revocation id on its own key
		}
		e.Kind, e.Payload = event.KindRevoke, policy.Revocation{ID: reuse(revIDs), Key: key, Party: party, Issuer: "m", IssuedAt: sm.n.t0}
	case w < 68:
		var ks event.KeyShare
		spy.log.View(func(s *State) {
			if k := s.Keys[target]; k != nil && len(k.Versions) > 0 {
				for _, h := range sm.nodes {
					blob, _ := advBlob(sm.r)
					ks.Shares = append(ks.Shares, event.Share{Version: 1, ActivateAt: now, Wrap: event.Wrap{Recipient: h.m.key, Digest: event.DigestOf(blob)}})
					e.Att = append(e.Att, blob)
				}
			}
		})
		if len(ks.Shares) == 0 {
			return
		}
		ks.Key = target
		e.Kind, e.Payload = event.KindKeyShare, ks
	case w < 80:
		// Its own org's keys: legitimate until its cut.
		if len(ownKeys) == 0 || sm.r.IntN(3) == 0 {
			e.Kind, e.Payload = event.KindKeyCreate, event.KeyCreate{Key: fmt.Sprintf("asset/m%d", sm.id())}
		} else {
			id := fmt.Sprintf("%sown%d", pm, sm.id())
			if !*simNoReuse && sm.r.IntN(3) == 0 {
				id = pm + "own" // one id on several of its keys
			}
			e.Kind, e.Payload = event.KindGrant, policy.Grant{ID: id, Key: sm.pick(ownKeys), Party: simParties[sm.r.IntN(len(simParties))], Ops: policy.OpsAll, Issuer: "m", IssuedAt: now}
		}
	case w < 90:
		if *simNoEquiv || len(sm.ml.chain) < 2 {
			return
		}
		if sides := sm.sides(); len(sides[0]) > 0 && len(sides[1]) > 0 && sm.r.IntN(2) == 0 {
			// Split brain: one branch of its next position to each side of
			// the partition (forwards stay within a side).
			l := sm.ml.sign(sm.t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: fmt.Sprintf("asset/left%d", sm.id())}})
			at := uint64(len(sm.ml.chain))
			r := sm.ml.sign(sm.t, advEv{At: at, Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: fmt.Sprintf("asset/right%d", sm.id())}})
			for _, h := range sides[0] {
				h.inbox = append(h.inbox, l)
			}
			for _, h := range sides[1] {
				h.inbox = append(h.inbox, r)
			}
			sm.logf("mallory splits its chain at %d across the partition", at)
			return
		}
		at := uint64(2 + sm.r.IntN(len(sm.ml.chain)-1))
		raw := sm.ml.sign(sm.t, advEv{At: at, Kind: event.KindKeyDestroy, Payload: event.KeyDestroy{Key: fmt.Sprintf("asset/fork%d", sm.id())}})
		sm.logf("mallory equivocates at %d", at)
		sm.malSend(raw, 1)
		return
	default:
		// A forged clock or time: refused by every node, not part of its chain.
		e = advEv{At: uint64(len(sm.ml.chain)) + 1, Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: target}}
		if sm.r.IntN(2) == 0 {
			e.LamportDelta = 1
		} else {
			e.Time = sm.ml.head().Time.Add(-time.Second)
		}
		sm.logf("mallory forges a clock")
		sm.malSend(sm.ml.sign(sm.t, e), 1)
		return
	}
	// Dependencies: none (backdated as far as it goes), or heads of the spy.
	if sm.r.IntN(2) == 0 {
		sum := spy.log.Summary()
		ids := make([]string, 0, len(sum))
		for id := range sum {
			// Plain issuer ids only (the summary also advertises evidence
			// and heads under prefixed ids).
			if len(id) == 64 && !strings.Contains(id, ":") && id != IssuerID(sm.ml.m.key) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			if sm.r.IntN(2) == 0 {
				evs, _ := spy.log.Events(id, sum[id]-1, 1)
				if len(evs) == 1 {
					e.Deps = append(e.Deps, advParse(sm.t, evs[0]))
				}
			}
		}
	}
	if sm.r.IntN(5) == 0 {
		e.Time = now.Add(time.Duration(sm.r.IntN(90)) * time.Second) // forward-dated, maybe beyond the skew
	}
	if !e.Time.IsZero() && sm.ml.head() != nil && e.Time.Before(sm.ml.head().Time) {
		e.Time = time.Time{}
	}
	raw := sm.ml.sign(sm.t, e)
	seq := uint64(len(sm.ml.chain))
	sm.logf("mallory signs %d: %s %s (%d deps)", seq, e.Kind, simBrief(e.Payload), len(e.Deps))
	if sm.r.IntN(6) == 0 {
		sm.mlSends = append(sm.mlSends, seq) // withheld for now
		return
	}
	sm.malSend(raw, 0)
	// Sometimes it releases what it withheld, to some.
	if len(sm.mlSends) > 0 && sm.r.IntN(3) == 0 {
		for _, s := range sm.mlSends {
			sm.malSend(sm.ml.chain[s-1].Marshal(), 1)
		}
		sm.mlSends = nil
	}
}

// finish heals the network, delivers what is in flight and syncs everyone
// by anti-entropy. Mallory's withheld events stay withheld unless some
// honest node holds them.
func (sm *sim) finish() {
	for _, h := range sm.nodes {
		h.side = 0
	}
	for _, h := range sm.nodes {
		// Some of what is in flight arrives; the rest is lost.
		var arrive [][]byte
		for _, raw := range h.inbox {
			if sm.r.IntN(3) == 0 {
				arrive = append(arrive, raw)
			}
		}
		h.log.DeliverBatch(arrive)
		h.inbox = nil
	}
	logs := make([]*Log, len(sm.nodes))
	for i, h := range sm.nodes {
		logs[i] = h.log
	}
	advSync(logs...)
	sm.logf("synced")
}

// check asserts the invariants of issue 8 on the synced nodes.
func (sm *sim) check() {
	ref := sm.nodes[0]
	want := ref.canon()
	wantSum := ref.log.Summary()
	for _, h := range sm.nodes[1:] {
		if got := h.canon(); !bytes.Equal(got, want) {
			sm.fail("after sync, node %s holds another state than node %s (Mallory is %s): %s; events: %s", h.m.key, ref.m.key,
				sm.ml.m.key, simDiff(ref.log, h.log), simSumDiff(h.log.Summary(), wantSum))
		}
	}
	// The same event sets — but for the chain of an issuer that
	// equivocated beyond its fork: a node that knows the fork may stop
	// taking its events (they count nowhere).
	tainted := map[string]bool{}
	ref.log.View(func(s *State) {
		for k, nd := range s.Nodes {
			if nd.Tainted != 0 {
				tainted[IssuerID(k)] = true
			}
		}
	})
	// Drops every entry of a tainted issuer (its chain, and whatever the
	// summary advertises under a prefix: evidence, heads).
	untainted := func(sum map[string]uint64) map[string]uint64 {
		for id := range sum {
			if len(id) >= 64 && tainted[id[len(id)-64:]] {
				delete(sum, id)
			}
		}
		return sum
	}
	wantSum = untainted(wantSum)
	for _, h := range sm.nodes[1:] {
		got := untainted(h.log.Summary())
		if !reflect.DeepEqual(got, wantSum) {
			sm.fail("after sync, node %s holds other events than node %s (Mallory is %s): %s", h.m.key, ref.m.key,
				sm.ml.m.key, simSumDiff(got, wantSum))
		}
	}
	// A restart folds the same (the restarts of the schedule check it
	// before and after too).
	if sm.r.IntN(3) == 0 {
		h := sm.nodes[sm.r.IntN(len(sm.nodes))]
		h.reopen(sm.t)
		if !bytes.Equal(h.canon(), want) {
			sm.fail("node %s folds to another state after the final restart: %s", h.m.key, simDiff(ref.log, h.log))
		}
	}
	// No event of one org changed another org's keys, grants or
	// revocations: each org's keys are what a fold of that org's events
	// alone gives.
	sm.checkOrgs(ref.log)
	// Mallory's events after its cut, from its first equivocation on, or
	// dated after its record's end have no effect.
	sm.checkMallory(ref.log)
	// Every revocation an owner issued is in force everywhere.
	later := sm.n.now.Add(time.Hour)
	for _, rv := range sm.revs {
		for _, h := range sm.nodes {
			h.log.View(func(s *State) {
				k := s.Keys[rv.key]
				if k.Destroyed {
					if d := s.Policy.Decide(policy.Principal{Parties: []policy.Party{rv.party}}, rv.key, policy.OpDecrypt, later); d.Allowed {
						sm.fail("node %s: %s allowed on destroyed key %s", h.m.key, rv.party, rv.key)
					}
					return
				}
				if !slices.ContainsFunc(s.Policy.Revocations(rv.key), func(r policy.Revocation) bool { return r.ID == rv.id && r.Party == rv.party }) {
					sm.fail("node %s: owner revocation %s (%s %s) not held", h.m.key, rv.id, rv.key, rv.party)
				}
				d := s.Policy.Decide(policy.Principal{Parties: []policy.Party{rv.party}}, rv.key, policy.OpDecrypt, later)
				if !d.Allowed {
					return
				}
				var g policy.Grant
				for _, st := range s.Policy.Grants(rv.key) {
					if st.Grant.ID == d.GrantID {
						g = st.Grant
					}
				}
				if !slices.Contains(g.Observed, rv.id) {
					sm.fail("node %s: %s on %s allowed by grant %s, issued before owner revocation %s", h.m.key, rv.party, rv.key, g.ID, rv.id)
				}
			})
		}
	}
	// Mallory's grants on other orgs' keys are never in force.
	ref.log.View(func(s *State) {
		for name, k := range s.Keys {
			if k.Owner == "Org2MSP" {
				continue
			}
			if d := s.Policy.Decide(policy.Principal{Parties: []policy.Party{"token:evil"}}, name, policy.OpDecrypt, later); d.Allowed {
				sm.fail("Mallory's grant to token:evil on %s is in force", name)
			}
			for _, st := range s.Policy.Grants(name) {
				if strings.HasPrefix(st.Grant.ID, IDPrefix(sm.ml.m.key)) {
					sm.fail("Mallory's grant %s on %s is held", st.Grant.ID, name)
				}
			}
		}
	})
}

// checkOrgs compares every org's keys in l's state with a fold of the
// key events of that org's nodes only, over the same node table (records,
// cuts, taints).
func (sm *sim) checkOrgs(l *Log) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ref := NewState(l.genesis)
	ref.load = l.state.load // stored grants are read back from l's store
	for k, nd := range l.state.Nodes {
		c := *nd
		c.records = slices.Clone(nd.records)
		ref.Nodes[k] = &c
	}
	issuers := make([]network.NodeKey, 0, len(l.chains))
	for k := range l.chains {
		issuers = append(issuers, k)
	}
	slices.SortFunc(issuers, compareKeys)
	for _, k := range issuers {
		org, _ := l.state.OrgOf(k)
		for _, e := range l.chains[k].events {
			name := e.key
			if name == "" {
				continue
			}
			if owner, _ := l.genesis.KeyOwner(name); owner == org {
				ref.apply(e)
			}
		}
	}
	s := l.state
	names := map[string]bool{}
	for name, k := range s.Keys {
		if k.Created {
			names[name] = true
		}
	}
	for name, k := range ref.Keys {
		if k.Created {
			names[name] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	for _, name := range sorted {
		org, _ := l.genesis.KeyOwner(name)
		got, want := simKeyFacts(s, name), simKeyFacts(ref, name)
		if got != want {
			sm.fail("%s's key %s changed by another org's events:\n got  %s\n want %s", org, name, got, want)
		}
		if !reflect.DeepEqual(s.Policy.Grants(name), ref.Policy.Grants(name)) || !reflect.DeepEqual(s.Policy.Revocations(name), ref.Policy.Revocations(name)) {
			sm.fail("%s's key %s: grants or revocations changed by another org's events:\n got  %v %v\n want %v %v", org, name,
				s.Policy.Grants(name), s.Policy.Revocations(name), ref.Policy.Grants(name), ref.Policy.Revocations(name))
		}
	}
}

// checkMallory compares l's keys and policy with a fold, over the same node
// table, of every key event but Mallory's that must not count: those after
// the cut the simulation had Org2's admin sign, those from the position at
// which it is tainted on, and those dated outside its record.
func (sm *sim) checkMallory(l *Log) {
	l.mu.Lock()
	defer l.mu.Unlock()
	nd := l.state.Nodes[sm.ml.m.key]
	if nd == nil {
		return // its record never reached anyone
	}
	if sm.dereg && (!nd.Deregistered || nd.LastSeq != sm.cut) {
		sm.fail("Mallory deregistered after %d, the state says %v after %d", sm.cut, nd.Deregistered, nd.LastSeq)
	}
	ref := NewState(l.genesis)
	ref.load = l.state.load // stored grants are read back from l's store
	for k, n := range l.state.Nodes {
		c := *n
		c.records = slices.Clone(n.records)
		ref.Nodes[k] = &c
	}
	issuers := make([]network.NodeKey, 0, len(l.chains))
	for k := range l.chains {
		issuers = append(issuers, k)
	}
	slices.SortFunc(issuers, compareKeys)
	dropped := 0
	for _, k := range issuers {
		for _, e := range l.chains[k].events {
			if e.key == "" {
				continue
			}
			if k == sm.ml.m.key && (sm.dereg && e.ev.Seq > sm.cut || nd.Tainted != 0 && e.ev.Seq >= nd.Tainted || !e.ev.Time.Before(sm.mlUntil)) {
				dropped++
				continue
			}
			ref.apply(e)
		}
	}
	if dropped == 0 {
		return
	}
	names := map[string]bool{}
	for name := range l.state.Keys {
		names[name] = true
	}
	for name := range ref.Keys {
		names[name] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	for _, name := range sorted {
		if got, want := simKeyFacts(l.state, name), simKeyFacts(ref, name); got != want {
			sm.fail("key %s changed by Mallory's events that do not count (cut %v after %d, tainted at %d, record until %s):\n got  %s\n want %s",
				name, sm.dereg, sm.cut, nd.Tainted, sm.mlUntil.Sub(sm.n.t0), got, want)
		}
		if !reflect.DeepEqual(l.state.Policy.Grants(name), ref.Policy.Grants(name)) || !reflect.DeepEqual(l.state.Policy.Revocations(name), ref.Policy.Revocations(name)) {
			sm.fail("key %s: grants or revocations changed by Mallory's events that do not count:\n got  %v %v\n want %v %v", name,
				l.state.Policy.Grants(name), l.state.Policy.Revocations(name), ref.Policy.Grants(name), ref.Policy.Revocations(name))
		}
	}
}

// simKeyFacts is what only the owner org decides about a key.
func simKeyFacts(s *State, name string) string {
	k := s.Keys[name]
	if k == nil || !k.Created {
		return "absent"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "owner=%s creator=%s det=%v exp=%v state=%v min=%d at=%s destroyed=%v", k.Owner, k.Creator, k.Deterministic, k.Exportable,
		k.State, k.MinDecrypt, k.CreatedAt.Format(time.RFC3339Nano), k.Destroyed)
	for _, v := range k.Versions {
		fmt.Fprintf(&b, " v%d(%s by %s check %x)", v.N, v.ActivateAt.Format(time.RFC3339), v.Creator, v.Check[:4])
	}
	return b.String()
}

// simSumDiff lists the summary entries that differ.
func simSumDiff(a, b map[string]uint64) string {
	ids := map[string]bool{}
	for id := range a {
		ids[id] = true
	}
	for id := range b {
		ids[id] = true
	}
	var out []string
	for id := range ids {
		if a[id] != b[id] {
			short := id
			if len(id) >= 64 {
				short = id[:len(id)-48] // the prefix, if any, and 16 hex digits of the issuer
			}
			out = append(out, fmt.Sprintf("%s %d/%d", short, a[id], b[id]))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// simCopies describes a key's wrapped copies, holders and acks.
func simCopies(s *State, name string) string {
	k := s.Keys[name]
	if k == nil {
		return ""
	}
	var parts []string
	for _, v := range k.Versions {
		for r := range v.Recipients() {
			for w := range v.Copies(r) {
				parts = append(parts, fmt.Sprintf("v%d:%s<-%s", v.N, r, w.From))
			}
		}
	}
	for h := range k.Holders {
		parts = append(parts, "holder:"+h.String())
	}
	for h := range k.Acks {
		parts = append(parts, "ack:"+h.String())
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// simDiff says where two states differ, for failure messages.
func simDiff(a, b *Log) string {
	var out []string
	a.View(func(sa *State) {
		b.View(func(sb *State) {
			for k, na := range sa.Nodes {
				nb := sb.Nodes[k]
				if nb == nil {
					out = append(out, fmt.Sprintf("node %s only in the first", k))
					continue
				}
				if na.Tainted != nb.Tainted || na.Deregistered != nb.Deregistered || na.LastSeq != nb.LastSeq || len(na.records) != len(nb.records) {
					out = append(out, fmt.Sprintf("node %s: tainted %d/%d deregistered %v/%v after %d/%d records %d/%d", k,
						na.Tainted, nb.Tainted, na.Deregistered, nb.Deregistered, na.LastSeq, nb.LastSeq, len(na.records), len(nb.records)))
				}
			}
			names := map[string]bool{}
			for n := range sa.Keys {
				names[n] = true
			}
			for n := range sb.Keys {
				names[n] = true
			}
			sorted := make([]string, 0, len(names))
			for n := range names {
				sorted = append(sorted, n)
			}
			slices.Sort(sorted)
			for _, n := range sorted {
				if fa, fb := simKeyFacts(sa, n), simKeyFacts(sb, n); fa != fb {
					out = append(out, fmt.Sprintf("key %s: %s | %s", n, fa, fb))
				}
				if ga, gb := fmt.Sprint(sa.Policy.Grants(n), sa.Policy.Revocations(n)), fmt.Sprint(sb.Policy.Grants(n), sb.Policy.Revocations(n)); ga != gb {
					out = append(out, fmt.Sprintf("policy of %s: %s | %s", n, ga, gb))
				}
			}
			for _, n := range sorted {
				if wa, wb := simCopies(sa, n), simCopies(sb, n); wa != wb {
					out = append(out, fmt.Sprintf("copies of %s: %s | %s", n, wa, wb))
				}
			}
			if len(out) == 0 {
				out = append(out, "nothing the diff knows of differs")
			}
		})
	})
	return strings.Join(out, "; ")
}
