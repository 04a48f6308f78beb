package token

import (
	"fmt"
	"slices"
	"strings"

	"github.com/keymesh/keymesh/policy"
)

// Binding is what a chaincode token may speak for: the Fabric channels,
// the chaincode and the MSPs of the transactions it presents. The node
// refuses a proposal of another channel or chaincode, or of a creator of
// another MSP, made with the token (see node/fabricid). Lists are held
// as sorted, comma-separated strings, so that a Token stays comparable;
// make one with [NewBinding].
type Binding struct {
	Channels  string // e.g. "ch1,ch2"
	Chaincode string
	MSPs      string // e.g. "Org1MSP,Org2MSP"
}

// NewBinding checks and normalises (sorts, de-duplicates) a binding.
func NewBinding(channels []string, chaincode string, msps []string) (Binding, error) {
	return binding{Channels: channels, Chaincode: chaincode, MSPs: msps}.normalise()
}

// ChannelList returns the channels.
func (b Binding) ChannelList() []string { return split(b.Channels) }

// MSPList returns the MSPs.
func (b Binding) MSPList() []string { return split(b.MSPs) }

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// binding is the list form of a Binding.
type binding struct {
	Channels  []string
	Chaincode string
	MSPs      []string
}

// Limits of a binding.
const (
	MaxBindingEntries = 32
	maxBindingName    = 249 // Fabric's channel name limit
)

// IsZero reports an empty binding (a token made before bindings existed,
// or of another role).
func (b Binding) IsZero() bool { return b == Binding{} }

// Allows reports whether a proposal of channel, chaincode and creator MSP
// is within b.
func (b Binding) Allows(channel, chaincode, msp string) bool {
	return !b.IsZero() && chaincode == b.Chaincode && slices.Contains(b.ChannelList(), channel) && slices.Contains(b.MSPList(), msp)
}

// String is "channels=a,b chaincode=c msps=Org1MSP,Org2MSP".
func (b Binding) String() string {
	return "channels=" + b.Channels + " chaincode=" + b.Chaincode + " msps=" + b.MSPs
}

// normalise checks b and returns it with sorted, de-duplicated lists.
func (b binding) normalise() (Binding, error) {
	name := func(what, s string) error {
		if s == "" || len(s) > maxBindingName {
			return fmt.Errorf("%s %q: want 1 to %d bytes", what, s, maxBindingName)
		}
		for _, c := range s {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == '+') {
				return fmt.Errorf("%s %q: only letters, digits and . - _ + are allowed", what, s)
			}
		}
		return nil
	}
	if len(b.Channels) == 0 || b.Chaincode == "" || len(b.MSPs) == 0 {
		return Binding{}, fmt.Errorf("a chaincode token names at least one channel, its chaincode and at least one MSP")
	}
	if len(b.Channels) > MaxBindingEntries || len(b.MSPs) > MaxBindingEntries {
		return Binding{}, fmt.Errorf("a binding lists at most %d channels and %d MSPs", MaxBindingEntries, MaxBindingEntries)
	}
	out := binding{Chaincode: b.Chaincode, Channels: slices.Clone(b.Channels), MSPs: slices.Clone(b.MSPs)}
	for _, c := range out.Channels {
		if err := name("channel", c); err != nil {
			return Binding{}, err
		}
	}
	if err := name("chaincode", out.Chaincode); err != nil {
		return Binding{}, err
	}
	for _, m := range out.MSPs {
		if !policy.ValidOrgID(m) {
			return Binding{}, fmt.Errorf("MSP %q is not a valid organisation id", m)
		}
	}
	slices.Sort(out.Channels)
	slices.Sort(out.MSPs)
	out.Channels, out.MSPs = slices.Compact(out.Channels), slices.Compact(out.MSPs)
	return Binding{Channels: strings.Join(out.Channels, ","), Chaincode: out.Chaincode, MSPs: strings.Join(out.MSPs, ",")}, nil
}

// CreateOption configures [Registry.Create].
type CreateOption func(*createOptions)

type createOptions struct{ binding Binding }

// WithBinding binds a chaincode token to channels, a chaincode and MSPs
// (see [NewBinding]). Only chaincode tokens take one.
func WithBinding(b Binding) CreateOption { return func(o *createOptions) { o.binding = b } }

func appendBinding(b []byte, bd Binding) []byte {
	chs, msps := bd.ChannelList(), bd.MSPList()
	b = append(b, byte(len(chs)))
	for _, c := range chs {
		b = appendStr(b, c)
	}
	b = appendStr(b, bd.Chaincode)
	b = append(b, byte(len(msps)))
	for _, m := range msps {
		b = appendStr(b, m)
	}
	return b
}

func readBinding(p []byte) (Binding, []byte, bool) {
	var bd binding
	list := func() ([]string, bool) {
		if len(p) < 1 || int(p[0]) == 0 || int(p[0]) > MaxBindingEntries {
			return nil, false
		}
		n := int(p[0])
		p = p[1:]
		out := make([]string, 0, n)
		for range n {
			var s string
			var ok bool
			if s, p, ok = readStr(p, maxBindingName); !ok || s == "" {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	var ok bool
	if bd.Channels, ok = list(); !ok {
		return Binding{}, nil, false
	}
	if bd.Chaincode, p, ok = readStr(p, maxBindingName); !ok || bd.Chaincode == "" {
		return Binding{}, nil, false
	}
	if bd.MSPs, ok = list(); !ok {
		return Binding{}, nil, false
	}
	n, err := bd.normalise()
	if err != nil || n.Channels != strings.Join(bd.Channels, ",") || n.MSPs != strings.Join(bd.MSPs, ",") {
		return Binding{}, nil, false
	}
	return n, p, true
}
