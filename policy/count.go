package policy

// CountGrants returns how many grants the state holds, revoked ones
// included, without copying them, in constant time.
func (s *State) CountGrants() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ngrants
}
