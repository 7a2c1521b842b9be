package batchconn

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestEnvDisableParses(t *testing.T) {
	gso, gro, batch, all := disabled{gso: true}, disabled{gro: true}, disabled{batch: true}, disabled{true, true, true}
	for _, tc := range []struct {
		value   string
		want    disabled
		unknown []string
	}{
		{"", disabled{}, nil},
		{"   ", disabled{}, nil},
		{",,", disabled{}, nil},
		{"gso", gso, nil},
		{"GRO", gro, nil},
		{"Batch", batch, nil},
		{"all", all, nil},
		{"ALL", all, nil},
		{"gso,gro", disabled{gso: true, gro: true}, nil},
		{" gso , gro ", disabled{gso: true, gro: true}, nil},
		{"gso gro", disabled{gso: true, gro: true}, nil},
		{"gso,\tGRO,\nbatch", all, nil},
		{"gso,", gso, nil},
		{"gso,gso", gso, nil},
		{"all,gso", all, nil},
		{"gso,all", all, nil},
		{"gso,foo", gso, []string{"foo"}},
		{"GSO=off", disabled{}, []string{"GSO=off"}},
		{"1", disabled{}, []string{"1"}},
		{"true", disabled{}, []string{"true"}},
		{"none", disabled{}, []string{"none"}},
		{"gsoo, gro, Batchh", gro, []string{"gsoo", "Batchh"}},
	} {
		d, unknown := parseDisable(tc.value)
		if d != tc.want || !slices.Equal(unknown, tc.unknown) {
			t.Errorf("parseDisable(%q) = %+v, %q; want %+v, %q", tc.value, d, unknown, tc.want, tc.unknown)
		}
	}
}

func TestEnvDisableBatchTakesOffloadWithIt(t *testing.T) {
	for _, tc := range []struct {
		d                     disabled
		noGSO, noGRO, noBatch bool
	}{
		{disabled{}, false, false, false},
		{disabled{gso: true}, true, false, false},
		{disabled{gro: true}, false, true, false},
		{disabled{batch: true}, true, true, true},
	} {
		if tc.d.noGSO() != tc.noGSO || tc.d.noGRO() != tc.noGRO || tc.d.noBatch() != tc.noBatch {
			t.Errorf("%+v: noGSO %v noGRO %v noBatch %v; want %v %v %v", tc.d,
				tc.d.noGSO(), tc.d.noGRO(), tc.d.noBatch(), tc.noGSO, tc.noGRO, tc.noBatch)
		}
	}
}

func TestEnvDisableReportsUnknownWordsOnce(t *testing.T) {
	reads := 0
	getenv := func(name string) string {
		reads++
		if name != "BATCHCONN_DISABLE" {
			t.Errorf("read %q, want BATCHCONN_DISABLE", name)
		}
		return "gso, turbo"
	}
	var report strings.Builder
	sw := newDisableSwitch(getenv, &report)
	for range 3 {
		if d := sw(); d != (disabled{gso: true}) {
			t.Errorf("switch = %+v, want gso only", d)
		}
	}
	if reads != 1 {
		t.Errorf("the environment was read %d times, want once", reads)
	}
	msg := report.String()
	if strings.Count(msg, "\n") != 1 {
		t.Errorf("reported %q, want one line", msg)
	}
	for _, want := range []string{"BATCHCONN_DISABLE", `"turbo"`, "gso", "gro", "batch", "all"} {
		if !strings.Contains(msg, want) {
			t.Errorf("report %q does not name %s", msg, want)
		}
	}
	t.Logf("report: %s", msg)
}

func TestEnvDisableSilentWhenWellFormed(t *testing.T) {
	for _, value := range []string{"", "gso", "all", " Gro , BATCH "} {
		var report strings.Builder
		readDisable(func(string) string { return value }, &report)
		if report.Len() != 0 {
			t.Errorf("%q: reported %q, want nothing", value, report.String())
		}
	}
}

func TestEnvDisableOfThisProcessIsTheEnvironments(t *testing.T) {
	want, _ := parseDisable(os.Getenv("BATCHCONN_DISABLE"))
	if got := operatorDisabled(); got != want {
		t.Errorf("operatorDisabled() = %+v, want %+v from the environment", got, want)
	}
}
