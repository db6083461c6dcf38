"""What a model is fed and how it is run: input specs and roles, generated inputs, ONNX Runtime sessions.

Shared by ``normopt.parity`` and ``normopt.latency`` (neither reaches into the other):

- ``spec``: ``InputSpec``, one graph input as a session declares it;
- ``roles``: what each input is (ids, mask, positions, past, cache flag) and the sizes it is bound to;
- ``inputs``: parsing ``--shape``, generating and loading feeds, casting them to the declared types;
- ``ortsession``: ONNX Runtime sessions (providers, optimization levels, CUDA checks);
- ``runs``: checked runs (a session's inputs, a run that names the feeds it failed on).
"""
