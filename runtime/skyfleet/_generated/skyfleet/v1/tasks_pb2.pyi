from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_OUTCOME_UNSPECIFIED: _ClassVar[TaskOutcome]
    TASK_OUTCOME_SUCCEEDED: _ClassVar[TaskOutcome]
    TASK_OUTCOME_FAILED: _ClassVar[TaskOutcome]
    TASK_OUTCOME_DEADLINE_EXCEEDED: _ClassVar[TaskOutcome]
    TASK_OUTCOME_REJECTED: _ClassVar[TaskOutcome]

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_QUEUED: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_SUCCEEDED: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]
    TASK_STATE_DEADLINE_EXCEEDED: _ClassVar[TaskState]
    TASK_STATE_CANCELLED: _ClassVar[TaskState]
TASK_OUTCOME_UNSPECIFIED: TaskOutcome
TASK_OUTCOME_SUCCEEDED: TaskOutcome
TASK_OUTCOME_FAILED: TaskOutcome
TASK_OUTCOME_DEADLINE_EXCEEDED: TaskOutcome
TASK_OUTCOME_REJECTED: TaskOutcome
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_QUEUED: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_SUCCEEDED: TaskState
TASK_STATE_FAILED: TaskState
TASK_STATE_DEADLINE_EXCEEDED: TaskState
TASK_STATE_CANCELLED: TaskState

class Constraints(_message.Message):
    __slots__ = ("clouds", "regions")
    CLOUDS_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    clouds: _containers.RepeatedScalarFieldContainer[str]
    regions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, clouds: _Optional[_Iterable[str]] = ..., regions: _Optional[_Iterable[str]] = ...) -> None: ...

class SubmitTaskRequest(_message.Message):
    __slots__ = ("handler", "payload", "idempotency_key", "constraints", "kind", "request_id", "session", "deadline_seconds")
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    handler: str
    payload: bytes
    idempotency_key: str
    constraints: Constraints
    kind: str
    request_id: str
    session: str
    deadline_seconds: float
    def __init__(self, handler: _Optional[str] = ..., payload: _Optional[bytes] = ..., idempotency_key: _Optional[str] = ..., constraints: _Optional[_Union[Constraints, _Mapping]] = ..., kind: _Optional[str] = ..., request_id: _Optional[str] = ..., session: _Optional[str] = ..., deadline_seconds: _Optional[float] = ...) -> None: ...

class SubmitTaskResponse(_message.Message):
    __slots__ = ("request_id", "outcome", "output", "error", "executed_by", "attempts", "latency_ms", "duplicate")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_BY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    outcome: TaskOutcome
    output: bytes
    error: str
    executed_by: str
    attempts: int
    latency_ms: float
    duplicate: bool
    def __init__(self, request_id: _Optional[str] = ..., outcome: _Optional[_Union[TaskOutcome, str]] = ..., output: _Optional[bytes] = ..., error: _Optional[str] = ..., executed_by: _Optional[str] = ..., attempts: _Optional[int] = ..., latency_ms: _Optional[float] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("task", "routed_by", "attempt")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ROUTED_BY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task: SubmitTaskRequest
    routed_by: str
    attempt: int
    def __init__(self, task: _Optional[_Union[SubmitTaskRequest, _Mapping]] = ..., routed_by: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("output", "executed_by", "duplicate")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_BY_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    output: bytes
    executed_by: str
    duplicate: bool
    def __init__(self, output: _Optional[bytes] = ..., executed_by: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class TaskStreamEvent(_message.Message):
    __slots__ = ("chunk", "end")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    chunk: OutputChunk
    end: StreamEnd
    def __init__(self, chunk: _Optional[_Union[OutputChunk, _Mapping]] = ..., end: _Optional[_Union[StreamEnd, _Mapping]] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class StreamEnd(_message.Message):
    __slots__ = ("request_id", "outcome", "error", "executed_by", "attempts", "chunks", "bytes", "latency_ms", "first_chunk_ms")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_BY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_CHUNK_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    outcome: TaskOutcome
    error: str
    executed_by: str
    attempts: int
    chunks: int
    bytes: int
    latency_ms: float
    first_chunk_ms: float
    def __init__(self, request_id: _Optional[str] = ..., outcome: _Optional[_Union[TaskOutcome, str]] = ..., error: _Optional[str] = ..., executed_by: _Optional[str] = ..., attempts: _Optional[int] = ..., chunks: _Optional[int] = ..., bytes: _Optional[int] = ..., latency_ms: _Optional[float] = ..., first_chunk_ms: _Optional[float] = ...) -> None: ...

class ExecuteStreamEvent(_message.Message):
    __slots__ = ("started", "chunk")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    started: ExecuteStarted
    chunk: OutputChunk
    def __init__(self, started: _Optional[_Union[ExecuteStarted, _Mapping]] = ..., chunk: _Optional[_Union[OutputChunk, _Mapping]] = ...) -> None: ...

class ExecuteStarted(_message.Message):
    __slots__ = ("executed_by",)
    EXECUTED_BY_FIELD_NUMBER: _ClassVar[int]
    executed_by: str
    def __init__(self, executed_by: _Optional[str] = ...) -> None: ...

class TaskRecord(_message.Message):
    __slots__ = ("task_id", "task", "state", "attempt", "executor", "seq", "progress", "note", "output", "error", "holders", "accepted_unix", "deadline_unix", "accepted_by", "report_age_ms")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_BY_FIELD_NUMBER: _ClassVar[int]
    REPORT_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    task: SubmitTaskRequest
    state: TaskState
    attempt: int
    executor: str
    seq: int
    progress: float
    note: str
    output: bytes
    error: str
    holders: _containers.RepeatedScalarFieldContainer[str]
    accepted_unix: float
    deadline_unix: float
    accepted_by: str
    report_age_ms: int
    def __init__(self, task_id: _Optional[str] = ..., task: _Optional[_Union[SubmitTaskRequest, _Mapping]] = ..., state: _Optional[_Union[TaskState, str]] = ..., attempt: _Optional[int] = ..., executor: _Optional[str] = ..., seq: _Optional[int] = ..., progress: _Optional[float] = ..., note: _Optional[str] = ..., output: _Optional[bytes] = ..., error: _Optional[str] = ..., holders: _Optional[_Iterable[str]] = ..., accepted_unix: _Optional[float] = ..., deadline_unix: _Optional[float] = ..., accepted_by: _Optional[str] = ..., report_age_ms: _Optional[int] = ...) -> None: ...

class TaskRef(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class StoreRecordResponse(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    def __init__(self, stored: _Optional[bool] = ...) -> None: ...

class LaunchResponse(_message.Message):
    __slots__ = ("executor",)
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    executor: str
    def __init__(self, executor: _Optional[str] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("idempotency_key",)
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    def __init__(self, idempotency_key: _Optional[str] = ...) -> None: ...

class CancelTaskResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    def __init__(self, cancelled: _Optional[bool] = ...) -> None: ...
