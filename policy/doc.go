// Package policy decides who may use which key, for which operation and when.
//
// It holds parties ([Party]), grants ([Grant]), revocations ([Revocation]),
// their deterministic fold ([State]) and the pure evaluation of a request
// against that fold ([State.Decide]). It does no I/O of its own and never
// reads the clock: the time of a decision is always passed in. It knows
// nothing of HTTP, libp2p or storage (what history it does not keep in
// memory it hands to an [Archive] its user provides); the event layer checks that an event is signed and
// authorised and then applies the grant or revocation it carries with
// [State.AddGrant] or [State.AddRevocation].
//
// Start with [NewState], feed it grants and revocations, and ask
// [State.Decide] on every encrypt and decrypt request; [Decision.Err] turns a
// denial into an error that wraps [ErrNotGranted].
//
// # Parties
//
// A [Party] is who a grant names, in one canonical string form:
//
//	org:<OrgID>                every registered node of an organisation
//	fabric:<OrgID>/<identity>  a Hyperledger Fabric client identity
//	eth:0x<40 hex digits>      an Ethereum account (lower case)
//	token:<name>               an API client holding a bearer token
//
// [ParseParty] is the one strict parser; it lower-cases Ethereum addresses
// (it does not check EIP-55 checksums) and rejects everything else that is
// not already canonical. A [Principal] is who asks: one or more parties,
// for example a Fabric caller is both fabric:Org1MSP/alice and org:Org1MSP.
// Decide compares parties byte for byte, so a principal's parties must be
// canonical (come from ParseParty).
//
// # Remove-wins
//
// A revocation names a (key, party) pair, not a grant. A grant observes a
// revocation of its own (key, party) if its issuer had applied the
// revocation when it issued the grant, which it shows in one of two ways:
// Observed lists the revocation's ID, or the revocation's event is within
// the grant event's causal reach ([Reach]: the event layer proves which of
// its issuer's and other issuers' events the grant's event follows). A
// grant is in force only if it observes every revocation of the same
// (key, party) held in the state. Hence:
//
//   - a revocation ends every grant of its (key, party) issued before it, and
//     every grant issued concurrently with it (whose issuer had not seen it);
//   - a grant issued after its issuer applied the revocation, and listing it
//     in Observed or following it causally, is in force again;
//   - with two revocations, a grant that observed only one stays revoked.
//
// Causal reach is what keeps grants small: a pair granted and revoked n
// times by one node has its n-th grant follow the n-1 revocations through
// its issuer's own chain, with an empty Observed
// ([State.RevocationChains] and [State.Unobserved] say what a new grant
// must follow or list). A reach cannot be claimed for an
// event that did not exist when the grant was signed: it is made of event
// positions that the grant's event names by hash (its chain and its
// dependencies), so no grant pre-empts a later revocation.
//
// The rule looks only at the sets of grants and revocations (with their
// reaches and positions), never at the order they arrived in or at their
// IssuedAt times, so two States holding the same grants and revocations are
// in the same state and give the same
// [State.Canonical] bytes and the same decisions, whatever the insertion
// order, duplicates included, and whether their records sit in memory
// or in the archive. Revocation protects what is written after it:
// what a party could already read was shared.
//
// Two caveats the event layer must honour for that promise to hold across
// nodes. First, IDs are unique: adding a grant (or revocation) whose ID is
// already held with a different content — in memory or, for an ended
// grant or a placed revocation, in the archive — fails with
// [ErrConflict] and leaves the state unchanged, so which of two conflicting events a node keeps
// depends on which it saw first; a conflict means an issuer reused an ID
// (equivocation or a bug) and must be treated as such. Second,
// [State.DropKey] forgets a destroyed key; events of that key arriving
// afterwards must not be applied again.
//
// # Memory and the archive
//
// A revoked grant can never be in force again, and a revocation with a
// position is summed up, for every later grant of its pair, by the
// highest position of its chain: so a [State] keeps in memory only its
// live grants and those summaries, and hands ended grants and placed
// revocations to an [Archive] ([WithArchive]), a small interface of
// named records that the mesh implements over its store. The package
// stays pure: it encodes the records, and knows nothing of the store
// behind them. Listings, pages, Canonical and the check that a reused ID
// has the content held read the archive back; Decide does not. See the
// State doc, "Memory".
//
// # Decisions
//
// [State.Decide] allows a request iff some party of the principal has an
// in-force grant for the key whose Ops include the operation and whose
// bounds hold: NotBefore <= at < NotAfter, a zero bound being absent. When
// several grants allow, the one with the smallest ID is named, so the choice
// is deterministic; the allowed reason is "grant <id>".
//
// A denial gives the most specific reason:
//
//   - "no grant for <parties> on this key": no party of the principal has
//     any grant for the key;
//   - "operation <op> not granted": grants exist, but none includes the
//     operation;
//   - otherwise every grant that includes the operation fails, and the reason
//     is that of the grant that came closest: "grant not yet valid" before
//     "grant expired" before "grant revoked" (a grant that is revoked and
//     also outside its bounds counts as revoked), ties going to the smallest
//     ID. Such a denial names that grant in GrantID and Party.
//
// There is no administrator bypass. Separation of duties: the node's admin
// token is the party token:admin, which manages keys, grants and tokens but
// gets data access (encrypt or decrypt) only if a grant names token:admin,
// like any other party.
package policy
