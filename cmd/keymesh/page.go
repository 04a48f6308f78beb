package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/keymesh/keymesh/node/apiv1"
)

// pageFlags are the --limit and --after flags of a listing command.
type pageFlags struct {
	limit int
	after string
}

// add defines the flags; afterUsage is the help of --after, whose first
// back-quoted word names its value.
func (p *pageFlags) add(cmd *cobra.Command, afterUsage string) {
	f := cmd.Flags()
	f.IntVar(&p.limit, "limit", 0, fmt.Sprintf("list one page of at most `N` items, 1 to %d, and the --after of the next page (default: follow every page)", apiv1.MaxPageLimit))
	f.StringVar(&p.after, "after", "", afterUsage)
}

// check refuses a --limit given out of range. It returns whether --limit
// was given, that is whether to list one page only.
func (p *pageFlags) check(cmd *cobra.Command) (onePage bool, err error) {
	if !cmd.Flags().Changed("limit") {
		return false, nil
	}
	if p.limit < 1 || p.limit > apiv1.MaxPageLimit {
		return false, usagef("%s: --limit must be from 1 to %d", cmd.Name(), apiv1.MaxPageLimit)
	}
	return true, nil
}

// follow lists pages from after until the last one, with fetch returning
// one page's items and the next cursor. The server's default page size is
// used.
func follow[T any](after string, fetch func(after string) ([]T, string, error)) ([]T, error) {
	all := []T{}
	for {
		items, next, err := fetch(after)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" || next == after {
			return all, nil
		}
		after = next
	}
}

// nextLine ends a one-page table with the flag that lists the next page.
func nextLine(w io.Writer, next string) {
	if next != "" {
		fmt.Fprintf(w, "next: --after %s\n", cell(next))
	}
}
