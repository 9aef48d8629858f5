"""The TensorBoard side of tests/e2e/tensorboard.rs: reads a run folder's event file with the
tensorboard package's own reader (no TensorFlow) and prints {tag: [[step, value], ...]} as JSON."""
import glob
import json
import sys

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

files = glob.glob(sys.argv[1] + "/events.out.tfevents.*")
assert len(files) == 1, files
scalars = {"file_version": []}
for event in EventFileLoader(files[0]).Load():
    if event.file_version:
        scalars["file_version"].append(event.file_version)
    for v in event.summary.value:
        value = v.simple_value if v.HasField("simple_value") else v.tensor.float_val[0]
        scalars.setdefault(v.tag, []).append([event.step, value])
print(json.dumps(scalars))
