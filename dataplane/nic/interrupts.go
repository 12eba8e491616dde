package nic

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// interrupts maps IRQ action names, as printed in the last column of
// /proc/interrupts, to IRQ numbers. Lines without a numeric IRQ (NMI, LOC,
// ERR, ...) are architecture counters, not device interrupts, and are skipped.
type interrupts map[string]int

// parseInterrupts reads /proc/interrupts. The per-CPU count columns vary in
// number with the CPU count and the chip/hwirq columns vary by architecture,
// so every field after the counts is treated as a candidate name: a queue's
// IRQ is recognised by its full name, which no chip or hwirq field matches.
// One IRQ line may list several actions separated by ", ".
func parseInterrupts(r io.Reader) (interrupts, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	irqs := interrupts{}
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			if strings.HasPrefix(strings.TrimSpace(line), "CPU") {
				continue
			}
		}
		label, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		irq, err := strconv.Atoi(strings.TrimSpace(label))
		if err != nil {
			continue
		}
		fields := strings.Fields(rest)
		i := 0
		for i < len(fields) && isDigits(fields[i]) {
			i++
		}
		for _, f := range fields[i:] {
			if name := strings.TrimSuffix(f, ","); name != "" {
				if _, dup := irqs[name]; !dup {
					irqs[name] = irq
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read interrupts: %w", err)
	}
	return irqs, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// queueIRQNames lists the names drivers give the IRQ of RX queue q, most
// specific first. dev is the interface name, driver the basename of
// /sys/class/net/DEV/device/driver and bus the basename of
// /sys/class/net/DEV/device (a PCI address, or virtioN for virtio_net).
func queueIRQNames(dev, driver, bus string, q int) []string {
	qs := strconv.Itoa(q)
	names := make([]string, 0, 8)
	if driver != "" {
		// i40e, ice, iavf: "<driver>-<dev>-TxRx-<q>".
		names = append(names, driver+"-"+dev+"-TxRx-"+qs)
	}
	if strings.HasPrefix(bus, "virtio") {
		// virtio_net names virtqueues after the virtio device, not the netdev.
		names = append(names, bus+"-input."+qs)
	}
	if bus != "" {
		// mlx5 completion vectors, one per channel.
		names = append(names, "mlx5_comp"+qs+"@pci:"+bus)
	}
	// ixgbe, igb, bnxt_en: combined vectors; igb with split vectors: rx-only;
	// bnx2x: fastpath vectors.
	names = append(names, dev+"-TxRx-"+qs, dev+"-rx-"+qs, dev+"-fp-"+qs)
	return names
}
