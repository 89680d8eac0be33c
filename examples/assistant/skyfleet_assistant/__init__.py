"""An example Skyfleet agent package: the `assistant` task handler (`agent.py`), a
multi-step agent that keeps each session's conversation on its host (`conversations.py`),
calls a model through a small client interface (`model_client.py`) and streams its answer;
a stand-in model endpoint for its tests and demo (`standin.py`)."""
