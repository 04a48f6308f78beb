package api

import (
	"crypto/fips140"

	"github.com/keymesh/keymesh/node/apiv1"
)

// fipsStatus reports the process's FIPS 140-3 mode and module.
func fipsStatus(required bool) apiv1.FIPSStatus {
	mode := "off"
	switch {
	case fips140.Enforced():
		mode = "only"
	case fips140.Enabled():
		mode = "on"
	}
	return apiv1.FIPSStatus{Mode: mode, Module: fips140.Version(), Required: required}
}
