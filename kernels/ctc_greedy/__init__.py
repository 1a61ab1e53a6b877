"""CTC greedy decoding kernels: ``reference`` (plain torch) and ``triton`` (CUDA / interpreter).

Both return the packed form ``(tokens, frames, offsets)``: int64 tensors where utterance b
owns ``tokens[offsets[b]:offsets[b + 1]]`` and ``frames`` holds each token's first frame.
The public entry point is :func:`speechdecode.decoding.ctc_greedy`.
"""
