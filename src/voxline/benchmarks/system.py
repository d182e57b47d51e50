"""What a benchmark reads about a process and the machine: CPU time, memory, descriptors, load,
and the server's own Prometheus histograms (as differences between two scrapes)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15 of stat)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def cpu_pressure_us() -> int | None:
    """Total µs some task on this machine waited for a CPU (Linux PSI), or None where unavailable.
    Over a window, its increase divided by the window says how contended the machine was."""
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def busy_cpus(interval_s: float = 1.0) -> float:
    """How many CPUs were busy, on average, over ``interval_s`` (others' work included)."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]
        return sum(values) - idle, sum(values)

    busy0, total0 = sample()
    time.sleep(interval_s)
    busy1, total1 = sample()
    return (os.cpu_count() or 1) * (busy1 - busy0) / max(1, total1 - total0)


@dataclass
class Histogram:
    """Cumulative bucket counts of one Prometheus histogram (label sets summed)."""

    bounds: list[float]
    counts: list[float]
    total: float = 0.0

    def minus(self, earlier: Histogram | None) -> Histogram:
        if earlier is None:
            return self
        return Histogram(self.bounds, [a - b for a, b in zip(self.counts, earlier.counts)], self.total - earlier.total)

    @property
    def n(self) -> int:
        return int(self.counts[-1]) if self.counts else 0

    def quantile(self, q: float) -> float | None:
        """Linear interpolation inside the bucket, as Prometheus's histogram_quantile does."""
        if not self.counts or self.counts[-1] <= 0:
            return None
        rank = q * self.counts[-1]
        previous_bound, previous_count = 0.0, 0.0
        for bound, count in zip(self.bounds, self.counts):
            if count >= rank:
                if math.isinf(bound):
                    return previous_bound
                width = count - previous_count
                fraction = (rank - previous_count) / width if width else 1.0
                return previous_bound + (bound - previous_bound) * fraction
            previous_bound, previous_count = bound, count
        return previous_bound

    def fraction_above(self, threshold: float) -> float | None:
        if not self.counts or self.counts[-1] <= 0:
            return None
        below = max((c for b, c in zip(self.bounds, self.counts) if b <= threshold), default=0.0)
        return 1.0 - below / self.counts[-1]


def parse_metrics(text: str) -> dict[str, object]:
    """Histograms by family name, and counter/gauge totals by sample name."""
    out: dict[str, object] = {}
    for family in text_string_to_metric_families(text):
        if family.type == "histogram":
            buckets: dict[float, float] = {}
            total = 0.0
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
                elif sample.name.endswith("_sum"):
                    total += sample.value
            bounds = sorted(buckets)
            out[family.name] = Histogram(bounds, [buckets[b] for b in bounds], total)
        else:
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                out[sample.name] = float(out.get(sample.name, 0.0)) + sample.value  # type: ignore[arg-type]
    return out
