"""``voxline bench``: load, capacity, soak and micro-benchmarks of Voxline itself.

The load benchmark runs the real server in its own process (pinned to its own CPUs), the
caller simulator in one or more other processes, and hosted providers as local fakes with
fixed latencies, so what it measures is Voxline's own cost per call.
"""
