"""Local servers that speak hosted providers' real wire protocols, on a loopback port.

They stand in for OpenAI, ElevenLabs and the others in the tests and in ``voxline bench load``,
where their fixed latencies let a measurement count Voxline's own cost and nothing else.
"""
