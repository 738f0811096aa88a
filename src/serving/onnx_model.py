# Triton Python-backend model that serves an ONNX file with onnxruntime (CPU).
# Written into the model repository by the factory's deploy step, beside model.onnx; the digest of
# model.onnx was checked against the registry before Triton was asked to load it.
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.session = ort.InferenceSession(os.path.join(version_dir, "model.onnx"), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "input").as_numpy().astype(np.float32)
            y = self.session.run(None, {self.input_name: x})[0].astype(np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("output", y)]))
        return responses
