"""Rendering: blinded labels, the status figures, the design and randomization PDFs and the
recovery sheet. Faces and services use it; it uses only the domain."""
