"""Triton kernels, one file per op. Imported lazily (on first use), never by
`import lcnet_fast`, so TRITON_INTERPRET can still be set before they are decorated."""
