//go:build !linux

package badgerstore

func releaseMapped(string) (int, error) { return 0, ErrUnsupported }

func fileResident() (int64, error) { return 0, ErrUnsupported }
