"""A caller simulator that plays Twilio against a running Voxline, exactly as Twilio speaks."""
