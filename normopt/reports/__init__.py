"""Every report normopt writes or prints, rendered in one place from typed results.

- ``run``: ``RunReport``, the run's one model (export, fusion, parity, latency, what to ship), its
  JSON document and its Markdown; ``bench``: a ``BenchReport`` as a table, Markdown, CSV or JSON;
- ``html``: Markdown as one self-contained page, and the escaping that keeps model text as text;
- ``chart``: the latency chart (PNG).

Above the steps that produce results (``exporting``, ``fusing``, ``parity``, ``latency``), below
``running`` and the command line, which only choose a format and a destination.
"""
