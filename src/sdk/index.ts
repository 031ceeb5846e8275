// The Corral SDK, browser-safe: nothing here (nor anything it imports) loads a `node:*` module or a
// package at run time; the wire types come from the API's schemas as types only. Node-only helpers
// (the Unix socket transport, the default socket) live in ./node.ts.
export { Corral, Sandboxes, Execs, DEFAULT_TIMEOUT_MS, type ConnectOptions, type SandboxListOptions, type SandboxSpec, type SandboxLimits } from './corral-client.ts';
export { Sandbox, SandboxExecs, type Command, type ExecOptions, type BackgroundExecOptions, type StreamOptions, type DestroyOptions } from './sandbox-handle.ts';
export { ExecHandle, ExecStream, ExecStdin, type WaitOptions, type OutputOptions } from './exec-handle.ts';
export { joinOutput, type ExecFrame, type ExecOutputFrame, type OutputOffsets, type OutputStream } from './exec-frames.ts';
export { SandboxFiles, type FileWatch, type ReadOptions, type WriteOptions, type ListOptions, type UploadBody } from './file-client.ts';
export { Approvals, type Approval, type ApprovalState } from './approval-client.ts';
export { SandboxPty, Terminal, type PtyCreateOptions, type PtyAttachOptions, type TerminalCloseOptions } from './terminal.ts';
export { SandboxProcesses, Process, type ProcessSpec, type ProcessInfo, type ProcessState, type ProcessStopOptions, type ProcessRemoveOptions } from './process-client.ts';
export type { LogLine, LogOptions, LogTime, JsonLogOptions, TextLogOptions } from './log-stream.ts';
export { SandboxCheckpoints, type Checkpoint, type CheckpointRestoreResult, type CheckpointSaveOptions, type CheckpointRestoreOptions } from './checkpoint-client.ts';
export { EventStream, type CorralEvent, type CorralEventType, type EventReset, type StreamEvent, type EventStreamOptions, type CorralEventsOptions } from './event-stream.ts';
export type { WebSocketFactory, WebSocketInit, WebSocketLike } from './web-socket.ts';
export { CorralApiError, CommandExitError, isCorralApiError, isNotFound, commandFailed, type ClientErrorCode, type CorralErrorCode, type CorralApiErrorInit } from './sdk-errors.ts';
export type { CallOptions, FetchLike } from './api-client.ts';
export type {
  Sandbox as SandboxInfo,
  SandboxCreate,
  SandboxState,
  ExecResultEnvelope,
  ExecRecord,
  ExecFrameWire,
  Ping,
  SystemInfo,
  Health,
  BackendCapabilities,
  FileInfo,
  FileList,
  FileWriteResult,
  FileEditResult,
  FileMkdirResult,
  FileRemoveResult,
  FileMoveResult,
  FileUploadResult,
  FileChangeEvent,
} from '../protocol/api-schemas.ts';
export type { ErrorCode } from '../protocol/errors.ts';
