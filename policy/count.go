package policy

// CountGrants returns how many grants the state holds, revoked ones
// included, without copying them.
func (s *State) CountGrants() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, byParty := range s.keys {
		for _, pe := range byParty {
			n += len(pe.grants)
		}
	}
	return n
}
