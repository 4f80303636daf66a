"""Local transformers models, loaded and streamed in this process.

model = load_model(spec, settings)          # ModelError(spec.id, cause) on any failure
stream = model.stream(messages, spec)       # a Stream for this one request
for piece in stream:                        # text pieces as they are generated
    ...
stream.tokens                               # tokens it generated

hub         hub timeouts, the offline switch, the probe, hub id or local directory
devices     device and dtype
processors  processors without torchvision (images only for video-capable models)
loaded      LoadedModel: the pipeline, its streamer, one Stream per request
streaming   PieceStreamer: generated tokens to text pieces, cheaply per token
loading     load_model and its one-line error causes
download    a hub model's first download, its bytes reported as they arrive
cache       what of a model is on this machine (read by the server process, no torch)
"""

from arena.backends.hf.devices import cpu_threads, resolve_device, resolve_dtype
from arena.backends.hf.hub import configure_hub, is_local_path
from arena.backends.hf.loaded import LoadedModel
from arena.backends.hf.loading import load_model
from arena.backends.hf.processors import NoVideoProcessor, load_processor, processor_without_video

__all__ = [
    "LoadedModel",
    "NoVideoProcessor",
    "configure_hub",
    "cpu_threads",
    "is_local_path",
    "load_model",
    "load_processor",
    "processor_without_video",
    "resolve_device",
    "resolve_dtype",
]
