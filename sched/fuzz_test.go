package sched

import "testing"

// FuzzHashSchedulers feeds arbitrary flows (any address bytes, mapped or
// not, any protocol and port) to dh, sh and mh with every flag combination
// and checks each pick against the reference model.
func FuzzHashSchedulers(f *testing.F) {
	f.Add(uint8(6), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 19, 0, 1}, uint16(1234), []byte{0x20, 1, 0, 2}, []byte{3, 0, 1, 7})
	f.Add(uint8(17), []byte("0123456789abcdef"), uint16(0), []byte{}, []byte{1})
	f.Fuzz(func(t *testing.T, proto uint8, caddr []byte, cport uint16, vaddr []byte, weights []byte) {
		if len(weights) == 0 || len(weights) > 32 {
			return
		}
		fl := Flow{Proto: proto, CPort: cport}
		copy(fl.CAddr[:], caddr)
		copy(fl.VAddr[:], vaddr)
		ds := make([]Dest, len(weights))
		for i, w := range weights {
			ds[i] = Dest{ID: uint32(i), Weight: int32(w % 8), Port: uint16(80 + i)}
			ds[i].Addr[15] = byte(i)
			ds[i].Addr[0] = w
		}
		loads := NewLoads(len(ds))
		for i, w := range weights {
			if w&0x80 != 0 {
				loads.SetThresholds(uint32(i), 1, 0)
				loads.Bind(uint32(i), true)
			}
		}
		for _, flags := range []Flags{0, FlagSched1, FlagSched2, FlagSched1 | FlagSched2} {
			for _, name := range []string{"dh", "sh", "mh"} {
				s, err := New(name, ds, flags, loads, Options{MaglevSize: 251})
				if err != nil {
					t.Fatal(err)
				}
				snap := snapshot(ds, loads)
				var want int
				switch name {
				case "dh":
					want = refDH(snap, fl.VAddr)
				case "sh":
					want = refSH(snap, refSHTable(snap), fl, flags&FlagSched1 != 0, flags&FlagSched2 != 0)
				case "mh":
					last := make([]int32, len(ds))
					for i, d := range ds {
						last[i] = d.Weight
					}
					want = refMH(snap, refMHTable(snap, last, 251), fl, flags&FlagSched1 != 0, flags&FlagSched2 != 0)
				}
				if got := s.Schedule(&fl); got != want {
					t.Fatalf("%s flags %#x: picked %d, reference %d", name, flags, got, want)
				}
			}
		}
	})
}
