"""moto's EBS direct APIs made to behave like the real service, patched in at server start.

moto 5.1.22 (moto/ebs/) serves StartSnapshot, PutSnapshotBlock, CompleteSnapshot, ListSnapshotBlocks
and GetSnapshotBlock, but not as EBS does. What differs, and what this module makes it do instead
(the service model: botocore's data/ebs/2019-11-02/service-2.json; the API reference pages
API_ListSnapshotBlocks, API_GetSnapshotBlock; the EBS direct APIs FAQ):

- ListSnapshotBlocks gives `BlockIndex` as a JSON string ("5"): the model says integer, and the
  Rust SDK's parser refuses a string where it expects a number. Here: integers.
- Blocks come in the order they were written. The FAQ: "The block indexes returned are unique, and
  in numerical order." Here: ascending.
- `BlockSize` is 512. EBS blocks are 524288 bytes. Here: 524288 (StartSnapshot too).
- No pagination: `maxResults`, `pageToken`, `startingBlockIndex` are ignored. Here: pages of at most
  `maxResults` blocks (100..=10000; fewer than 100 is raised to 100, as the FAQ says the service
  returns at least 100; more than 10000 is a ValidationException), `NextToken` until the last page,
  `startingBlockIndex` when there is no token. `page_cap` (`--ebs-page-cap`) makes every page hold
  at most that many blocks even when `maxResults` is larger, which the API allows ("the request
  can return less blocks than MaxResults"), so a client's pagination is exercised with few blocks.
- An unknown snapshot ID raises KeyError: HTTP 500 with an HTML page. EBS answers 404
  ResourceNotFoundException, Reason SNAPSHOT_NOT_FOUND. A malformed one (the model's pattern is
  `^snap-[0-9a-f]+$`, 1 to 64 characters) is not checked; EBS answers 400 ValidationException
  (Reason INVALID_SNAPSHOT_ID).
- GetSnapshotBlock ignores `blockToken`; a block never written raises KeyError (500). EBS needs the
  token ListSnapshotBlocks gave: anything else is 400 ValidationException, Reason
  INVALID_BLOCK_TOKEN.
- PutSnapshotBlock stores whatever it gets under the index as written in the path ("05" and "5"
  are two blocks) and trusts the checksum. EBS takes only 524288 bytes whose base64 SHA-256 is the
  `x-amz-Checksum` sent (SHA256 being the only algorithm); a bad one is a 400 ValidationException.
- JSON answers say `Content-Type: text/html`. Here: `application/json`, and block data
  `application/octet-stream`.

EC2's side of the same snapshots (moto/ec2/models/elastic_block_store.py) differs too:

- StartSnapshot's snapshot is `completed` in EC2's DescribeSnapshots at once, although EBS keeps it
  `pending` until CompleteSnapshot (and a snapshot never completed stays `pending` until it times
  out). Here: EC2's State is `pending` from StartSnapshot to CompleteSnapshot, so a flow's bounded
  wait for `completed` can be tested with a snapshot that never completes (start it, never
  complete it).
- EC2 CreateSnapshot and CopySnapshot make snapshots that the EBS direct APIs do not know (404 for
  every call). In EBS an unmodified volume created from snapshot X, snapshotted, holds X's blocks,
  and a copy of X holds X's blocks. Here: CreateSnapshot of a volume created from snapshot X, and
  CopySnapshot of X (in any region of the account), give the new snapshot X's blocks (same data
  and checksums, new block tokens), `completed` as moto's EC2 makes them; a volume not created from
  a snapshot known to EBS gives an empty snapshot (ListSnapshotBlocks answers no blocks). So a test
  writes known bytes through StartSnapshot/PutSnapshotBlock/CompleteSnapshot, creates volumes from
  that snapshot, attaches them to an instance, and the snapshots a flow takes of them hold those
  bytes. DeleteSnapshot forgets the blocks too. (moto never writes to a volume, so "unmodified"
  always holds here.)

Errors have the shape of the rest-json protocol: the status of the model's `httpStatusCode`, the
exception's name in `x-amzn-ErrorType`, and a JSON body `{"Message": …, "Reason": …}` with the
members the model gives the exception. The Reason values are from the model's enums.
"""

import base64
import binascii
import hashlib
import json
import re

from moto.ebs.models import Block, EBSBackend, EBSSnapshot, ebs_backends
from moto.ebs.responses import EBSResponse
from moto.ec2.models.elastic_block_store import EBSBackend as EC2Volumes

BLOCK_SIZE = 524288
SNAPSHOT_ID = re.compile(r"snap-[0-9a-f]{1,59}")
MIN_RESULTS, MAX_RESULTS = 100, 10000
JSON = "application/json"


def error(status, kind, message, reason=None):
    """A rest-json error response of the EBS service model's exception `kind`."""
    body = {"Message": message}
    if reason is not None:
        body["Reason"] = reason
    return status, {"status": status, "x-amzn-ErrorType": kind, "Content-Type": JSON}, json.dumps(body)


def invalid(message, reason):
    return error(400, "ValidationException", message, reason)


def snapshot_or_error(response, snapshot_id):
    """The snapshot `snapshot_id`, or the error EBS gives for it: (snapshot, None) or (None, error)."""
    if not SNAPSHOT_ID.fullmatch(snapshot_id):
        return None, invalid(f"1 validation error detected: Value '{snapshot_id}' at 'snapshotId' failed to "
                             "satisfy constraint: Member must satisfy regular expression pattern: ^snap-[0-9a-f]+$",
                             "INVALID_SNAPSHOT_ID")
    snapshot = response.ebs_backend.snapshots.get(snapshot_id)
    if snapshot is None:
        return None, error(404, "ResourceNotFoundException", f"The snapshot '{snapshot_id}' does not exist.",
                           "SNAPSHOT_NOT_FOUND")
    return snapshot, None


def block_index(text):
    """A block index from a path or query, or None: a non-negative decimal integer."""
    return int(text) if text.isdigit() else None


def query(response, name):
    values = response.querystring.get(name) or [None]
    return values[0]


def page_token(index, scanned=False):
    """An opaque page token (the model's pattern `^[A-Za-z0-9+/=]+$`) that resumes at block `index`;
    `scanned`: the empty page before it was already given (see `install(empty_pages=…)`)."""
    return base64.b64encode(f"{'scan' if scanned else 'next'}:{index}".encode()).decode()


def token_index(token):
    """(index, scanned) of a token, or None."""
    try:
        text = base64.b64decode(token, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    kind, _, index = text.partition(":")
    index = block_index(index)
    return (index, kind == "scan") if kind in ("next", "scan") and index is not None else None


def inherit_blocks(ec2_backend, snapshot, source_region, source_snapshot_id):
    """Registers EC2 snapshot `snapshot` with the EBS direct APIs, `completed`, holding the blocks of
    snapshot `source_snapshot_id` of region `source_region` (none when it is None or unknown to EBS):
    what EBS holds for a snapshot of an unmodified volume created from that snapshot, or a copy."""
    account = ec2_backend.account_id
    source = ebs_backends[account][source_region].snapshots.get(source_snapshot_id) if source_snapshot_id else None
    copy = EBSSnapshot(account_id=account, snapshot=snapshot)
    copy.status = "completed"
    if source is not None:  # its size stays the volume's (a volume may be larger than its snapshot)
        for index, block in source.blocks.items():
            copy.blocks[index] = Block(block.block_data, block.checksum, block.checksum_algorithm, block.data_length)
    ebs_backends[account][ec2_backend.region_name].snapshots[snapshot.id] = copy


def install(page_cap=None, empty_pages=False):
    """Patches moto's EBS so that every server in this process behaves like the real service.
    `empty_pages`: every page with blocks is preceded by an empty one whose NextToken leads to it,
    as AWS may answer while it scans a sparse stretch ("the request can return ... an empty array of
    blocks"), so a client must follow the token of an empty page."""
    original_init = EBSSnapshot.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.block_size = BLOCK_SIZE

    def start_snapshot(self):
        size = json.loads(self.body).get("VolumeSize")
        if not isinstance(size, int) or size < 1:
            return invalid("VolumeSize must be a positive number of GiB.", "INVALID_VOLUME_SIZE")
        return 201, {"status": 201, "Content-Type": JSON}, original_start(self)

    def put_snapshot_block(self):
        parts = self.parsed_url.path.split("/")
        snapshot, failure = snapshot_or_error(self, parts[-3])
        if failure:
            return failure
        index = block_index(parts[-1])
        if index is None:
            return invalid(f"Invalid block index '{parts[-1]}'.", "INVALID_BLOCK")
        headers = {k.lower(): v for k, v in self.headers.items()}
        data = self.body if isinstance(self.body, bytes) else self.body.encode()
        if headers.get("x-amz-data-length") != str(BLOCK_SIZE) or len(data) != BLOCK_SIZE:
            return invalid(f"Block data must be {BLOCK_SIZE} bytes.", "INVALID_PARAMETER_VALUE")
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if headers.get("x-amz-checksum-algorithm") != "SHA256" or headers.get("x-amz-checksum") != checksum:
            return invalid("The checksum does not match the block data.", "INVALID_PARAMETER_VALUE")
        if snapshot.status != "pending":
            return invalid(f"The snapshot '{snapshot.snapshot_id}' is not pending.", "INVALID_SNAPSHOT_ID")
        snapshot.put_block(index, data, checksum, "SHA256", str(BLOCK_SIZE))
        return 201, {"status": 201, "Content-Type": JSON, "x-amz-Checksum": checksum,
                     "x-amz-Checksum-Algorithm": "SHA256"}, "{}"

    def complete_snapshot(self):
        snapshot, failure = snapshot_or_error(self, self.parsed_url.path.split("/")[-1])
        if failure:
            return failure
        self.ebs_backend.complete_snapshot(snapshot.snapshot_id)
        return 202, {"status": 202, "Content-Type": JSON}, json.dumps({"Status": "completed"})

    def list_snapshot_blocks(self):
        snapshot, failure = snapshot_or_error(self, self.path.split("?")[0].split("/")[-2])
        if failure:
            return failure
        asked = query(self, "maxResults")
        limit = MAX_RESULTS if asked is None else block_index(asked)
        if limit is None or limit > MAX_RESULTS:
            return invalid(f"maxResults must be between {MIN_RESULTS} and {MAX_RESULTS}.", "INVALID_PARAMETER_VALUE")
        limit = max(limit, MIN_RESULTS)
        if page_cap is not None:
            limit = min(limit, page_cap)
        token = query(self, "pageToken")
        scanned = False
        if token is not None:
            parsed = token_index(token)
            if parsed is None:
                return invalid("The pagination token is invalid.", "INVALID_PAGE_TOKEN")
            start, scanned = parsed
        else:
            start = block_index(query(self, "startingBlockIndex") or "0")
            if start is None:
                return invalid("startingBlockIndex must be a non-negative integer.", "INVALID_PARAMETER_VALUE")
        indices = sorted(i for i in snapshot.blocks if i >= start)
        if empty_pages and indices and not scanned:
            return 200, {"status": 200, "Content-Type": JSON}, json.dumps({
                "Blocks": [], "VolumeSize": snapshot.volume_size, "BlockSize": BLOCK_SIZE,
                "NextToken": page_token(start, scanned=True)})
        page = indices[:limit]
        body = {
            "Blocks": [{"BlockIndex": i, "BlockToken": snapshot.blocks[i].block_token} for i in page],
            "VolumeSize": snapshot.volume_size,
            "BlockSize": BLOCK_SIZE,
        }
        if len(indices) > limit:
            body["NextToken"] = page_token(indices[limit])
        return 200, {"status": 200, "Content-Type": JSON}, json.dumps(body)

    def get_snapshot_block(self):
        parts = self.path.split("?")[0].split("/")
        snapshot, failure = snapshot_or_error(self, parts[-3])
        if failure:
            return failure
        block = snapshot.blocks.get(block_index(parts[-1]))
        if block is None or query(self, "blockToken") != block.block_token:
            return invalid("The block token is not valid for this block.", "INVALID_BLOCK_TOKEN")
        return 200, {"status": 200, "Content-Type": "application/octet-stream",
                     "x-amz-Checksum": block.checksum, "x-amz-Checksum-Algorithm": block.checksum_algorithm,
                     "x-amz-Data-Length": block.data_length}, block.block_data

    def backend_start_snapshot(self, *args, **kwargs):
        snapshot = original_backend_start(self, *args, **kwargs)
        self.ec2_backend.get_snapshot(snapshot.snapshot_id).status = "pending"
        return snapshot

    def backend_complete_snapshot(self, snapshot_id):
        ec2_snapshot = self.ec2_backend.snapshots.get(snapshot_id)
        if ec2_snapshot is not None:
            ec2_snapshot.status = "completed"
        return original_backend_complete(self, snapshot_id)

    def ec2_create_snapshot(self, volume_id, *args, **kwargs):
        snapshot = original_create_snapshot(self, volume_id, *args, **kwargs)
        inherit_blocks(self, snapshot, self.region_name, self.get_volume(volume_id).snapshot_id)
        return snapshot

    def ec2_copy_snapshot(self, source_snapshot_id, source_region, *args, **kwargs):
        snapshot = original_copy_snapshot(self, source_snapshot_id, source_region, *args, **kwargs)
        inherit_blocks(self, snapshot, source_region, source_snapshot_id)
        return snapshot

    def ec2_delete_snapshot(self, snapshot_id):
        deleted = original_delete_snapshot(self, snapshot_id)
        ebs_backends[self.account_id][self.region_name].snapshots.pop(snapshot_id, None)
        return deleted

    original_start = EBSResponse.start_snapshot
    original_backend_start = EBSBackend.start_snapshot
    original_backend_complete = EBSBackend.complete_snapshot
    original_create_snapshot = EC2Volumes.create_snapshot
    original_copy_snapshot = EC2Volumes.copy_snapshot
    original_delete_snapshot = EC2Volumes.delete_snapshot
    EBSBackend.start_snapshot = backend_start_snapshot
    EBSBackend.complete_snapshot = backend_complete_snapshot
    EC2Volumes.create_snapshot = ec2_create_snapshot
    EC2Volumes.copy_snapshot = ec2_copy_snapshot
    EC2Volumes.delete_snapshot = ec2_delete_snapshot
    EBSSnapshot.__init__ = init
    EBSResponse.start_snapshot = start_snapshot
    EBSResponse.put_snapshot_block = put_snapshot_block
    EBSResponse.complete_snapshot = complete_snapshot
    EBSResponse.list_snapshot_blocks = list_snapshot_blocks
    EBSResponse.get_snapshot_block = get_snapshot_block
