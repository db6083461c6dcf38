"""Exporting torch / Hugging Face models to ONNX (torch is imported only when exporting)."""
