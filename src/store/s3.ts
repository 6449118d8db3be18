/**
 * A repository in an S3 bucket (Amazon S3, Ceph radosgw, MinIO, any S3-compatible server), under an
 * optional key prefix. URL: `s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]`; credentials come from the
 * usual AWS places (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws), the region
 * from AWS_REGION (us-east-1 otherwise). Only this file knows the S3 client; the CLI passes a URL to
 * openS3Store.
 *
 * How the Store promises map onto S3: a PUT is atomic (an object is absent or whole); create-only
 * puts send `If-None-Match: *`, so the server refuses a second writer (412 → 'conflict'); stat is a
 * HEAD. An object larger than the part size goes up in parts (multipart upload, several parts in
 * flight; create-only: a HEAD first, and `If-None-Match` on completion where the server honours
 * it) and becomes visible only when the upload completes; a failed or aborted upload is aborted on
 * the server. A plain PUT, once sent, is not cut short by an abort signal: S3 could not tell us
 * whether it landed, and the Store contract wants "whole or nothing" from an aborted put; the
 * stuck-request timeout bounds it instead. A missing bucket reads as an empty one (get says
 * 'not-found' naming the bucket, list yields nothing) and is created by the first put: init.
 * Listings may lag behind writes on some servers, as store.ts allows (a caller that needs
 * read-after-write uses stat or get, which S3 answers consistently).
 *
 * Failures become StoreErrors with a plain sentence and a `transient` flag: throttling (429, 503
 * SlowDown), server errors (5xx), timeouts and dropped connections are transient, and the RetryStore
 * that openS3Store stacks around this one retries them with backoff and jitter (the SDK's own
 * retries are off, so there is one retry loop); wrong credentials, a missing bucket or a refused
 * permission are not.
 */
import type * as Sdk from '@aws-sdk/client-s3';
import { LifeboatError, errnoCode, isLifeboatError, type ErrorCode } from '../util/errors.js';
import { pool } from '../util/concurrency.js';
import { LimitStore } from './limit.js';
import { assertValidPrefix, byteRange } from './names.js';
import { RetryStore, type RetryOptions } from './retry.js';
import { assertValidName, collectingWriter, StoreError, type LeftoverRemover, type ObjectWriter, type OperationOptions, type PutOptions, type Store, type StoreProperties, type StoreStat } from './store.js';

let sdkModule: Promise<typeof Sdk> | undefined;
/** The AWS SDK, loaded on first use: it takes a noticeable part of a second, which no other repository should pay. */
function loadSdk(): Promise<typeof Sdk> {
  return (sdkModule ??= import('@aws-sdk/client-s3'));
}

/** Where a repository lives in S3. */
export interface S3Location {
  /** The server's base URL, such as http://127.0.0.1:7480 (no path). */
  readonly endpoint: string;
  readonly bucket: string;
  /** The key prefix of every object, '' or ending in '/'. */
  readonly prefix: string;
}

const URL_FORM = 's3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]';
/** S3's bucket naming rules (lower-case DNS labels, 3 to 63 characters). */
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX_PART_RE = /^[A-Za-z0-9._-]+$/;

const MiB = 1024 * 1024;
/** Answers up to this size are read into one buffer of the length the server announced. */
const ONE_BUFFER_MAX = 256 * MiB;

/**
 * An answer's body, whole. With its length known, it is read straight into one buffer: the SDK's
 * own collector gathers the pieces and copies them into a fresh zero-filled array, which took a
 * tenth of an S3 restore's main thread. A body longer than announced is cut off there (the caller
 * then sees the length it asked for is wrong, or the announced one); a shorter one is returned as
 * it came, for the caller to see the answer was cut short.
 */
async function readBody(body: unknown, announced: number | undefined): Promise<Uint8Array> {
  const stream = body as NodeJS.ReadableStream & { destroy?: () => void };
  if (typeof (stream as { on?: unknown }).on !== 'function') return (body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
  const known = announced !== undefined && Number.isSafeInteger(announced) && announced >= 0 && announced <= ONE_BUFFER_MAX;
  const out = known ? Buffer.allocUnsafeSlow(announced) : undefined;
  const pieces: Buffer[] = [];
  let got = 0;
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => {
      if (out) {
        if (got + chunk.length > out.length) {
          stream.destroy?.();
          reject(new StoreError('io', `The S3 server sent more than the ${out.length} bytes it announced.`, true));
          return;
        }
        out.set(chunk, got);
      } else pieces.push(chunk);
      got += chunk.length;
    });
    stream.on('end', () => resolve());
    stream.on('error', reject);
    // Closed before its end without an error: what came is returned, and found short by the caller.
    stream.on('close', () => resolve());
  });
  return out ? out.subarray(0, got) : Buffer.concat(pieces, got);
}

/** Whether a repository location is an S3 URL (s3:…). */
export function isS3Url(location: string): boolean {
  return /^s3:/i.test(location);
}

/** Parses `s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]`; a malformed URL is a 'usage' error saying the form. */
export function parseS3Url(location: string): S3Location {
  const bad = (why: string): LifeboatError => new LifeboatError('usage', `The repository URL "${location}" is not a valid S3 location (${why}); write it as ${URL_FORM}.`);
  if (!isS3Url(location)) throw bad('it does not start with s3:');
  let url: URL;
  try {
    url = new URL(location.slice(3));
  } catch {
    throw bad('the server address is missing or malformed');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('the server must be given as http:// or https://');
  if (url.username || url.password) throw bad('credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  if (url.search || url.hash) throw bad('it has a ? or # part');
  const parts = url.pathname.split('/').filter((p) => p !== '');
  const bucket = parts.shift();
  if (bucket === undefined) throw bad('the bucket name is missing');
  if (!BUCKET_RE.test(bucket)) throw bad(`"${bucket}" is not a valid bucket name`);
  for (const p of parts) if (!PREFIX_PART_RE.test(p) || p === '.' || p === '..') throw bad(`"${p}" is not allowed in the prefix: use letters, digits, '.', '_' and '-'`);
  return { endpoint: url.origin, bucket, prefix: parts.map((p) => `${p}/`).join('') };
}

export interface S3StoreOptions {
  /** Objects larger than this go up in parts of this size (default 16 MiB; S3's minimum is 5 MiB). */
  readonly partSize?: number;
  /** Parts of one object in flight at once (default 4). */
  readonly partsInFlight?: number;
  /** Packs the repository uploads at once (default 4). */
  readonly uploadsInFlight?: number;
  /** A request that sends or receives nothing for this long fails as transient (default 60 s). */
  readonly idleTimeoutMs?: number;
  /** Connecting longer than this fails as transient (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Explicit credentials instead of the AWS environment and profiles (tests). */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Told of every HTTP request sent, with the SDK command's name (for counting). */
  readonly onRequest?: (command: string) => void;
}

/** The region requests are signed for: AWS_REGION, else us-east-1 (which S3-compatible servers accept). */
function region(): string {
  return process.env['AWS_REGION'] || process.env['AWS_DEFAULT_REGION'] || 'us-east-1';
}

export class S3Store implements Store, LeftoverRemover {
  readonly location: string;
  readonly properties: StoreProperties;
  private client: Sdk.S3Client | undefined;
  private readonly partSize: number;
  private readonly partsInFlight: number;
  /** Whether this store created the bucket once already (a missing bucket is created on the first put). */
  private bucketChecked = false;
  /**
   * Whether the server has answered once. A refused connection before that is most likely a wrong
   * address and is reported at once; after it, the server is restarting or overloaded, and a
   * retry is worth its wait.
   */
  private reached = false;

  constructor(
    readonly where: S3Location,
    private readonly options: S3StoreOptions = {},
  ) {
    this.location = `S3 bucket ${where.bucket}${where.prefix ? `/${where.prefix.slice(0, -1)}` : ''} at ${where.endpoint}`;
    this.properties = { uploadsInFlight: options.uploadsInFlight ?? 4 };
    this.partSize = Math.max(5 * MiB, options.partSize ?? 16 * MiB);
    this.partsInFlight = Math.max(1, options.partsInFlight ?? 4);
  }

  /** The S3 client, made on the first request (the SDK is loaded only for an S3 repository). */
  private makeClient(sdk: typeof Sdk): Sdk.S3Client {
    const options = this.options;
    const config: Sdk.S3ClientConfig = {
      endpoint: this.where.endpoint,
      region: region(),
      forcePathStyle: true,
      // One retry loop: RetryStore's (openS3Store). radosgw and other S3-compatible servers do not
      // all understand the SDK's newer checksum trailers (a streamed PUT gets 411 on radosgw 16).
      maxAttempts: 1,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: options.connectTimeoutMs ?? 10_000,
        socketTimeout: options.idleTimeoutMs ?? 60_000,
        httpAgent: { keepAlive: true, maxSockets: 32 },
        httpsAgent: { keepAlive: true, maxSockets: 32 },
      },
      ...(options.credentials ? { credentials: { ...options.credentials } } : {}),
    };
    // The SDK warns on Node 20 about its releases of 2027; that is no news for a Lifeboat user.
    process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
    const client = new sdk.S3Client(config);
    const onRequest = options.onRequest;
    if (onRequest) {
      // Runs once per HTTP request sent (after serialization), so it counts what reaches the server.
      client.middlewareStack.add(
        (next, context) => async (args) => {
          onRequest(context.commandName ?? 'request');
          return next(args);
        },
        { step: 'finalizeRequest', name: 'lifeboatCountRequests' },
      );
    }
    return client;
  }

  private key(name: string): string {
    return this.where.prefix + name;
  }

  /** Sends `command`; turns any failure into a StoreError (or the abort's reason). */
  private async send<T>(call: (sdk: typeof Sdk, client: Sdk.S3Client, options: { abortSignal?: AbortSignal }) => Promise<T>, doing: string, name: string, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    try {
      const sdk = await loadSdk();
      signal?.throwIfAborted();
      this.client ??= this.makeClient(sdk);
      const r = await call(sdk, this.client, signal ? { abortSignal: signal } : {});
      this.reached = true;
      return r;
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== undefined) this.reached = true;
      throw this.storeError(e, doing, name);
    }
  }

  /** A plain sentence for an S3 or network failure, transient where trying again may help. */
  storeError(e: unknown, doing: string, name: string): LifeboatError {
    if (isLifeboatError(e)) return e;
    const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const status = err.$metadata?.httpStatusCode;
    const code = err.name ?? '';
    const server = this.where.endpoint;
    const what = `Lifeboat could not ${doing} ${name} in ${this.location}`;
    const make = (c: ErrorCode, message: string, transient: boolean): StoreError => new StoreError(c, message, transient, { cause: e });
    const net = errnoCode(e) ?? errnoCode((e as { cause?: unknown }).cause);
    if (net === 'ECONNREFUSED') return make('io', `Nothing answers at ${server} (connection refused): check the address in the repository URL and that the S3 server is running.`, this.reached);
    if (net === 'ENOTFOUND' || net === 'EAI_AGAIN') return make('io', `The S3 server name in ${server} cannot be found: check the address in the repository URL and the network connection.`, net === 'EAI_AGAIN');
    if (net === 'ECONNRESET' || net === 'EPIPE' || net === 'ETIMEDOUT' || net === 'EHOSTUNREACH' || net === 'ENETUNREACH' || net === 'ECONNABORTED' || code === 'TimeoutError' || (status === undefined && /socket hang up|timed? ?out/i.test(err.message ?? ''))) {
      return make('io', `${what}: the connection to ${server} failed or stalled (${net ?? code ?? 'timeout'}).`, true);
    }
    if (code === 'CredentialsProviderError' || /Could not load credentials/i.test(err.message ?? '')) {
      return make('usage', 'No S3 credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE for a profile in ~/.aws/credentials.', false);
    }
    if (code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch' || code === 'InvalidToken' || code === 'ExpiredToken') {
      return make('usage', `The S3 server at ${server} refused the credentials (${code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE).`, false);
    }
    if (code === 'AuthorizationHeaderMalformed' || code === 'PermanentRedirect' || code === 'IllegalLocationConstraintException') {
      return make('usage', `The bucket "${this.where.bucket}" at ${server} is in another region than ${region()}: set AWS_REGION to the bucket's region, or use that region's address in the repository URL (${code}).`, false);
    }
    if (code === 'NoSuchBucket') {
      return make('no-repository', `There is no bucket "${this.where.bucket}" at ${server}: check the repository URL, or create a repository there with "lifeboat init" (it makes the bucket).`, false);
    }
    if (code === 'QuotaExceeded' || code === 'EntityTooLarge') {
      return make('no-space', `${what}: the bucket's quota is used up (${code}). Free space in the bucket or raise its quota.`, false);
    }
    if (code === 'AccessDenied' || status === 403) {
      return make('io', `The S3 server at ${server} does not allow these credentials to ${doing} ${name} (${code || 'access denied'}): check the account's permissions on bucket "${this.where.bucket}".`, false);
    }
    if (status === 429 || status === 503 || code === 'SlowDown' || code === 'RequestTimeout' || code === 'ConditionalRequestConflict' || code === 'RequestTimeTooSkewed' || (status !== undefined && status >= 500)) {
      return make('io', `${what}: the server answered ${status ?? ''} ${code || 'error'}; it may be busy.`.replace(/ {2,}/g, ' '), true);
    }
    return make('io', `${what}: ${code || 'error'}${status ? ` (HTTP ${status})` : ''}${err.message && err.message !== code ? `: ${err.message}` : ''}.`, false);
  }

  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertValidName(name);
    options.signal?.throwIfAborted();
    try {
      await this.putOnce(name, data, options);
    } catch (e) {
      // A missing bucket is made on the first write (init), as other backup programs do.
      if (this.bucketChecked || !isLifeboatError(e) || e.code !== 'no-repository') throw e;
      this.bucketChecked = true;
      await this.createBucket(options.signal);
      await this.putOnce(name, data, options);
    }
    this.bucketChecked = true;
  }

  private async createBucket(signal?: AbortSignal): Promise<void> {
    try {
      await this.send((s, c, o) => c.send(new s.CreateBucketCommand({ Bucket: this.where.bucket }), o), 'create the bucket for', this.where.bucket, signal);
    } catch (e) {
      const cause = (e as { cause?: { name?: string } }).cause;
      if (cause?.name === 'BucketAlreadyOwnedByYou' || cause?.name === 'BucketAlreadyExists') return;
      throw e;
    }
  }

  private async putOnce(name: string, data: Uint8Array, options: PutOptions): Promise<void> {
    if (data.length > this.partSize) return this.putInParts(name, data, options);
    try {
      // Not given the signal: see the module comment (an aborted PUT may still land).
      await this.send(
        (s, c, o) => {
          const put = new s.PutObjectCommand({ Bucket: this.where.bucket, Key: this.key(name), Body: view(data), ...(options.ifAbsent ? { IfNoneMatch: '*' } : {}) });
          if (options.sha256) withPayloadHash(put, options.sha256);
          return c.send(put, o);
        },
        'save',
        name,
      );
    } catch (e) {
      throw this.conflictOr(e, name);
    }
  }

  /**
   * A refused create-only write (412) is a 'conflict'. (A 409 ConditionalRequestConflict, another
   * conditional write of the name still in progress, is transient: the retry then gets 412 or 200.)
   */
  private conflictOr(e: unknown, name: string): unknown {
    const cause = (e as { cause?: { name?: string; $metadata?: { httpStatusCode?: number } } }).cause;
    if (cause?.$metadata?.httpStatusCode === 412 || cause?.name === 'PreconditionFailed') {
      return new LifeboatError('conflict', `${name} already exists in ${this.location}, and Lifeboat does not overwrite it.`);
    }
    return e;
  }

  /** A multipart upload: nothing is visible until it completes; any failure aborts it on the server. */
  private async putInParts(name: string, data: Uint8Array, options: PutOptions): Promise<void> {
    const bucket = this.where.bucket;
    const key = this.key(name);
    const signal = options.signal;
    if (options.ifAbsent && (await this.stat(name, signal ? { signal } : {})) !== undefined) throw this.conflictOr({ cause: { $metadata: { httpStatusCode: 412 } } }, name);
    const created = await this.send((s, c, o) => c.send(new s.CreateMultipartUploadCommand({ Bucket: bucket, Key: key }), o), 'start uploading', name, signal);
    const uploadId = created.UploadId!;
    try {
      const count = Math.ceil(data.length / this.partSize);
      const etags: string[] = new Array<string>(count);
      await pool(count, this.partsInFlight, async (i) => {
        const body = view(data.subarray(i * this.partSize, Math.min(data.length, (i + 1) * this.partSize)));
        const r = await this.send((s, c, o) => c.send(new s.UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: i + 1, Body: body }), o), 'upload a part of', name, signal);
        etags[i] = r.ETag!;
      });
      signal?.throwIfAborted();
      // Completing is not given the signal: once sent, it may take effect whatever we do.
      const parts = etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 }));
      const complete = { Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts }, ...(options.ifAbsent ? { IfNoneMatch: '*' } : {}) };
      await this.send((s, c, o) => c.send(new s.CompleteMultipartUploadCommand(complete), o), 'save', name);
    } catch (e) {
      await this.send((s, c) => c.send(new s.AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })), 'abort uploading', name).catch(() => undefined);
      throw this.conflictOr(e, name);
    }
  }

  createWriter(options: OperationOptions = {}): ObjectWriter {
    // The name is known only at commit (a pack is named by its hash), and an S3 upload needs it
    // first: the pieces are collected and go up at commit, in parts when large.
    return collectingWriter((name, data, o) => this.put(name, data, o), options.signal);
  }

  async get(name: string, offset?: number, length?: number, options: OperationOptions = {}): Promise<Uint8Array> {
    assertValidName(name);
    const signal = options.signal;
    if (offset === undefined) return (await this.getRange(name, undefined, signal)).bytes;
    byteRange(name, Number.MAX_SAFE_INTEGER, offset, length); // a malformed range is a bug: RangeError before any I/O
    if (length === 0) {
      byteRange(name, await this.sizeOf(name, signal), offset, 0);
      return new Uint8Array(0);
    }
    const range = `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
    let r: { bytes: Uint8Array; total: number | undefined };
    try {
      r = await this.getRange(name, range, signal);
    } catch (e) {
      const status = ((e as { cause?: { $metadata?: { httpStatusCode?: number } } }).cause)?.$metadata?.httpStatusCode;
      if (status !== 416) throw e;
      // Asked from (or past) the end: an empty answer when offset is the size, else 'corrupt'.
      byteRange(name, await this.sizeOf(name, signal), offset, length);
      return new Uint8Array(0);
    }
    const total = r.total ?? offset + r.bytes.length;
    const [start, end] = byteRange(name, total, offset, length);
    if (r.bytes.length !== end - start) {
      throw new LifeboatError('corrupt', `The S3 server sent ${r.bytes.length} bytes of ${name} where ${end - start} were asked for; the answer was cut short.`);
    }
    return r.bytes;
  }

  private async sizeOf(name: string, signal?: AbortSignal): Promise<number> {
    const st = await this.stat(name, signal ? { signal } : {});
    if (!st) throw this.notFound(name);
    return st.size;
  }

  private notFound(name: string): LifeboatError {
    return new LifeboatError('not-found', `The repository file ${name} does not exist in ${this.location}.`);
  }

  private async getRange(name: string, range: string | undefined, signal?: AbortSignal): Promise<{ bytes: Uint8Array; total: number | undefined }> {
    try {
      const { r, bytes } = await this.send(
        async (s, c, o) => {
          const r = await c.send(new s.GetObjectCommand({ Bucket: this.where.bucket, Key: this.key(name), ...(range ? { Range: range } : {}) }), o);
          return { r, bytes: r.Body ? await readBody(r.Body, r.ContentLength) : new Uint8Array(0) };
        },
        'read',
        name,
        signal,
      );
      if (r.ContentLength !== undefined && bytes.length !== r.ContentLength) {
        throw new StoreError('io', `The S3 server's answer for ${name} was cut short (${bytes.length} of ${r.ContentLength} bytes).`, true);
      }
      const total = r.ContentRange ? Number(/\/(\d+)$/.exec(r.ContentRange)?.[1]) : undefined;
      return { bytes, total: total !== undefined && Number.isSafeInteger(total) ? total : undefined };
    } catch (e) {
      const cause = (e as { cause?: { name?: string } }).cause;
      if (cause?.name === 'NoSuchKey') throw this.notFound(name);
      if (cause?.name === 'NoSuchBucket') throw new LifeboatError('not-found', (e as Error).message, { cause: e });
      throw e;
    }
  }

  async stat(name: string, options: OperationOptions = {}): Promise<StoreStat | undefined> {
    assertValidName(name);
    try {
      const r = await this.send((s, c, o) => c.send(new s.HeadObjectCommand({ Bucket: this.where.bucket, Key: this.key(name) }), o), 'look at', name, options.signal);
      return { name, size: r.ContentLength ?? 0 };
    } catch (e) {
      const cause = (e as { cause?: { name?: string; $metadata?: { httpStatusCode?: number } } }).cause;
      const status = cause?.$metadata?.httpStatusCode;
      if (status === 404) return undefined;
      // A HEAD answer has no body, so a refusal does not say why (wrong key? no permission?): a
      // one-byte GET of the same object gets the reason, or the size if it is allowed after all.
      if (status === 403) {
        try {
          const r = await this.getRange(name, 'bytes=0-0', options.signal);
          return { name, size: r.total ?? r.bytes.length };
        } catch (g) {
          if (isLifeboatError(g) && g.code === 'not-found') return undefined;
          throw g;
        }
      }
      throw e;
    }
  }

  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<StoreStat> {
    assertValidPrefix(prefix);
    const signal = options.signal;
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.send(
          (s, c, o) => c.send(new s.ListObjectsV2Command({ Bucket: this.where.bucket, Prefix: this.key(prefix), ...(token ? { ContinuationToken: token } : {}) }), o),
          'list',
          prefix || 'the objects',
          signal,
        );
      } catch (e) {
        if ((e as { cause?: { name?: string } }).cause?.name === 'NoSuchBucket') return; // no bucket yet: nothing in it (init makes it)
        throw e;
      }
      for (const o of page.Contents ?? []) {
        const n = o.Key?.slice(this.where.prefix.length);
        if (n === undefined || !o.Key!.startsWith(this.where.prefix)) continue;
        try {
          assertValidName(n);
        } catch {
          continue; // not one of Lifeboat's objects (a stray key a person put there)
        }
        yield { name: n, size: o.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(name: string, options: OperationOptions = {}): Promise<void> {
    assertValidName(name);
    await this.send((s, c, o) => c.send(new s.DeleteObjectCommand({ Bucket: this.where.bucket, Key: this.key(name) }), o), 'delete', name, options.signal);
  }

  /**
   * Aborts the unfinished multipart uploads of packs under this repository's prefix (a writer
   * killed mid-upload leaves its parts stored, invisible and billed, until they are aborted). Prune
   * calls it under the exclusive lock: only packs go up in parts and only a lock holder writes
   * packs, so none of these uploads can still complete.
   */
  async removeLeftovers(options: OperationOptions = {}): Promise<number> {
    const signal = options.signal;
    const prefix = this.key('data/');
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.send(
        (s, c, o) => c.send(new s.ListMultipartUploadsCommand({ Bucket: this.where.bucket, Prefix: prefix, ...(keyMarker ? { KeyMarker: keyMarker } : {}), ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}) }), o),
        'list the unfinished uploads in',
        'data/',
        signal,
      );
      for (const u of page.Uploads ?? []) {
        if (!u.Key?.startsWith(prefix) || !u.UploadId) continue;
        await this.send((s, c, o) => c.send(new s.AbortMultipartUploadCommand({ Bucket: this.where.bucket, Key: u.Key, UploadId: u.UploadId }), o), 'abort the unfinished upload of', u.Key.slice(this.where.prefix.length), signal);
        aborted++;
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return aborted;
  }

  async close(): Promise<void> {
    this.client?.destroy();
  }
}

/**
 * `data` as a Buffer without a copy (a copy of every pack cost a fresh allocation's page faults): the
 * request has sent all of it, or is destroyed, once its put settles, and the caller keeps the bytes
 * until then (collectingWriter reuses a buffer only after put settled).
 */
function view(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Gives a PutObject request the SHA-256 of its body that the caller knows (PutOptions.sha256), as
 * the x-amz-content-sha256 header: the SDK's signer then signs with it instead of hashing the body
 * again. The server checks it against the bytes and refuses the write if they differ.
 */
function withPayloadHash(command: Sdk.PutObjectCommand, sha256: string): void {
  command.middlewareStack.add(
    (next) => async (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] = sha256;
      return next(args);
    },
    { step: 'build', name: 'lifeboatKnownPayloadHash' },
  );
}

/** Calls in flight to one S3 server at most (LimitStore). */
const MAX_IN_FLIGHT = 16;

/**
 * Tries of one call: the waits between them (0.5, 1, 2, 4, 8, 16, 30 s, each between half and all
 * of that) let a server restart or a throttled burst pass, about a minute at most.
 */
const MAX_ATTEMPTS = 8;

/**
 * The store for an S3 URL as the CLI uses it: S3Store inside a concurrency limit and a retry of
 * transient failures with backoff and jitter (store.ts's order: retry outside, limit inside).
 */
export function openS3Store(location: string, options: S3StoreOptions & { readonly retry?: RetryOptions } = {}): Store {
  return new RetryStore(new LimitStore(new S3Store(parseS3Url(location), options), MAX_IN_FLIGHT), { maxAttempts: MAX_ATTEMPTS, ...options.retry });
}
