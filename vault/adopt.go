package vault

// VersionCheck returns the commitment (KeyCheck) to the material of a
// version this vault holds, for network. It is how a node upgraded from
// standalone announces the versions it already holds (mesh/member
// Adopt); the material itself stays in the vault.
func (v *Vault) VersionCheck(network [32]byte, key string, version uint32) ([32]byte, error) {
	m, err := v.material(key, version)
	if err != nil {
		return [32]byte{}, err
	}
	defer clear(m)
	return KeyCheck(network, key, version, m), nil
}
