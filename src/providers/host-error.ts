// src/providers/host-error.ts
/** A host I/O call refused or failed: the code goes back to the provider and into the evidence. */
export class HostIoError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HostIoError';
  }
}
