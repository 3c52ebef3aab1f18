"""Live audio: the audio callback, the SPSC ring, the mailboxes and the inference thread."""
