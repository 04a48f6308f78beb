package main

import "testing"

// TestFabric_GatewayPicksEndorsersByDefault is issue 10 item 6: without
// -endorsers the client fixes no endorsing organisation (the gateway picks
// them from the endorsement policy); with it, it fixes exactly those.
func TestFabric_GatewayPicksEndorsersByDefault(t *testing.T) {
	for _, tc := range []struct {
		flag string
		want int
	}{
		{"", 0},
		{" , ", 0},
		{"Org1MSP", 1},
		{"Org1MSP,Org2MSP", 1},
	} {
		if got := len(endorseOptions(tc.flag)); got != tc.want {
			t.Errorf("endorseOptions(%q) = %d options, want %d", tc.flag, got, tc.want)
		}
	}
}
