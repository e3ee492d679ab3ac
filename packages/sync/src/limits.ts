/**
 * Every cap of the peer protocol and its listener, each with the reason for its number, in
 * one place (docs/PROTOCOL.md "Limits" lists the same table). A stranger — anyone who can
 * open a TCP connection — meets the pre-authentication caps; a member meets the per-session
 * rates. Nothing a peer sends can make memory or work grow beyond these.
 */

/** Version of the frame grammar and handshake; peers with another version are refused. */
export const PROTOCOL_VERSION = 7

/** Default cap on one frame's bytes after authentication, checked before decoding (16 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = 16 << 20

/**
 * Largest message accepted before a peer has proven the cluster secret and its key. A
 * `hello` is about 65 bytes (protocol 7) and an `auth` about 110; 4 KiB leaves room for growth. The
 * WebSocket layer refuses a larger message from its header, before buffering any of it, so
 * eight strangers sending 30 MiB each cost nothing.
 */
export const PRE_AUTH_MAX_FRAME_BYTES = 4096

/** A connection must complete `hello` + `auth` within this time, or it is closed. */
export const HANDSHAKE_TIMEOUT_MS = 5_000

/** Inbound connections held at once (sessions and handshakes together); more are refused at accept. */
export const MAX_INBOUND_CONNECTIONS = 256

/**
 * Inbound connections still in their handshake. Members complete it in milliseconds, so a
 * full table means someone opens connections without finishing them; we refuse more until
 * slots free (each is freed within {@link HANDSHAKE_TIMEOUT_MS}). Outbound dials are not
 * counted: a DRU can always reach its peers itself.
 */
export const MAX_HANDSHAKING = 32

/** New inbound connections accepted per second (token bucket refill), and the burst above it. */
export const HANDSHAKES_PER_SECOND = 50
export const HANDSHAKE_BURST = 100

/**
 * Seconds an HTTP upgrade request may take to arrive completely: a client that opens TCP
 * and sends nothing (or a header a byte at a time) is dropped after it.
 */
export const UPGRADE_REQUEST_TIMEOUT_MS = 5_000

/** How often Node checks connections against the request timeout (its default is 30 s). */
export const TIMEOUT_CHECK_INTERVAL_MS = 1_000

/**
 * Most events one `events` or `folded` frame may carry. A 1 MiB batch of 100-byte changes is
 * about 10,000 events; 16,384 bounds the event-loop time one frame can take to validate
 * (a frame of 60,000 tiny events used to block the loop for seconds).
 */
export const MAX_EVENTS_PER_FRAME = 16_384

/**
 * Most origins one fingerprint, ack or report may list. Origins are DRU incarnations; once
 * compacted they are summarised, so live ones stay few. The cap bounds a hostile frame's work.
 */
export const MAX_ORIGINS = 10_000

/** Most documents one snapshot frame may carry (the frame's byte cap bounds it too). */
export const MAX_SNAPSHOT_DOCS = 100_000

/**
 * Most tree nodes one `tree-probe` may ask about. An answer about inner nodes is 16 hashes
 * of 32 bytes per node (1,024 nodes: 512 KiB, well under the frame cap); a deep verify asks
 * about the nodes that differ, so only a verify with more than 1,024 differing nodes on one
 * level sends a second question (in parallel, same round trip).
 */
export const MAX_TREE_NODES = 1024

/**
 * Most documents one `tree-report` may list (the entries of the buckets asked about). At
 * 1,024 buckets and a million documents (~15 per bucket) an answer lists ~16,000; the cap
 * leaves room and bounds a hostile frame's work; the frame's byte cap bounds it too.
 */
export const MAX_TREE_DOCS = 200_000

/**
 * Most msgpack values (each array, map key, string, number, byte string…) one frame may hold.
 * The largest frames the protocol allows hold ~800,000: a `tree-report` of MAX_TREE_DOCS
 * entries (4 values each); a full `events` frame ~230,000. msgpack spends one byte on an
 * empty array, and decoding builds an object for each: a 16 MiB frame of them cost ~0.9 GB
 * of heap and seconds of blocked event loop before its schema was checked.
 */
export const MAX_FRAME_VALUES = 1_000_000

/** Most levels of arrays and maps one frame may nest (an `events` frame uses 5). */
export const MAX_FRAME_DEPTH = 16

/** Most heads one document entry of a `tree-report` may carry (concurrent heads are few). */
export const MAX_TREE_HEADS = 1024

/** Longest error message carried in an error frame. */
export const MAX_ERROR_MESSAGE = 1024

/** Length of HMACs (bytes), and of Ed25519 signatures. */
export const HMAC_BYTES = 32
export const SIGNATURE_BYTES = 64

/**
 * Frames per second an authenticated session may send, and the burst above it. Honest
 * traffic is byte-bounded batches, one ack per batch and a ping a second: far below. A member
 * flooding frames is closed (RATE_LIMITED) instead of occupying the event loop.
 */
export const FRAMES_PER_SECOND = 5_000
export const FRAME_BURST = 10_000

/**
 * Frames that make us do work proportional to our whole state — `vv` (checked against the
 * log), `expand`, `probe` (a deep one digests every document), `bootstrap` — per second and
 * burst. Honest peers send a handful per session.
 */
export const COSTLY_FRAMES_PER_SECOND = 5
export const COSTLY_FRAME_BURST = 20

/**
 * How long, in the sender's heartbeats, an origin a peer says it receives by another path is
 * held back from it while the peer's announced copy of it stops advancing and we hold more.
 * The peer announces at most once per heartbeat, so three leave room for one lost turn and
 * the link's delay; past it we forward anyway (a slow or dying path, or a peer that claims
 * a path it does not have, costs at most this delay, never an event).
 */
export const FORWARD_GRACE_HEARTBEATS = 3

/**
 * Default forward window: bytes of third parties' events (written neither by us nor by the
 * peer) a session has unacknowledged at once while the peer may get them by another path.
 * Which of two paths brings an origin first after a heal depends on the order sessions open
 * and on routes a round trip late; the full 8 MiB window held a whole 20,000-event origin,
 * so a lost race cost the origin twice (bench:sync's heal received 1.5 events per event
 * needed). 256 KiB (about 1,600 events of 160 bytes) bounds a race's cost per origin per path,
 * and four batches of 64 KiB keep the link busy while acks return.
 */
export const DEFAULT_FORWARD_WINDOW_BYTES = 256 << 10

/** Sessions kept at once with one DRU id (more than one only while two processes run under it). */
export const MAX_SESSIONS_PER_PEER = 4

/**
 * Frames the node-wide compression keeps, in maxBatchBytes (plain and compressed bytes
 * counted): 4 MiB at the default batch size. Sessions sending the same run go through the
 * same frames at nearly the same pace (each inside its own send window), so a few frames
 * of lag are covered; a session further behind compresses its frames again.
 */
export const SHARED_COMPRESSION_BATCHES = 4
