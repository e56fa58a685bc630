// firehose.mjs SLUICED_URL S3_URL - the AWS JS SDK v3 against Sluice's Firehose API
// (issue 16), every object read back from the S3-compatible store with
// @aws-sdk/client-s3. Run by test_firehose_js.py, which starts s3rver and sluiced
// (sluiced signs with SigV4: key AKID/SECRET, services "firehose" and "kinesis").
//
//   1. DirectPut in every compression format (PutRecord and PutRecordBatch): each object
//      listed (ListObjectsV2, pages of 2), fetched (GetObject), decompressed here and
//      compared byte for byte: every record exactly once, in put order, objects cut at
//      SizeInMBs, named as Firehose names them (YYYY/MM/DD/HH/<name>-1-<stamp>-<uuid><ext>).
//   2. KinesisStreamAsSource fed by @aws-sdk/client-kinesis PutRecords (two shards):
//      every record exactly once, a key's records in put order within an object.
//   3. Dynamic partitioning (partitionKeyFromQuery): each customer's records under its
//      prefix, once and in order; records that cannot be partitioned as Firehose's error
//      JSON under ErrorOutputPrefix with !{firehose:error-output-type}.
//   4. Describe/List (pages, type filter)/UpdateDestination (versions, the new prefix and
//      format on the next objects)/Tag/Untag/ListTags (pages)/Start and Stop
//      DeliveryStreamEncryption/Delete.
//   5. AWS errors as the SDK surfaces them: the modelled exception class, its name,
//      $fault, $metadata.httpStatusCode and message.
//
// Prints "ok: ..." per part; exits 1 on the first failure, saying what.
import zlib from "node:zlib";
import {
    FirehoseClient, CreateDeliveryStreamCommand, DeleteDeliveryStreamCommand,
    DescribeDeliveryStreamCommand, ListDeliveryStreamsCommand, ListTagsForDeliveryStreamCommand,
    PutRecordBatchCommand, PutRecordCommand, StartDeliveryStreamEncryptionCommand,
    StopDeliveryStreamEncryptionCommand, TagDeliveryStreamCommand,
    UntagDeliveryStreamCommand, UpdateDestinationCommand,
    ConcurrentModificationException, InvalidArgumentException, LimitExceededException,
    ResourceInUseException, ResourceNotFoundException,
} from "@aws-sdk/client-firehose";
import {
    S3Client, CreateBucketCommand, GetObjectCommand, paginateListObjectsV2,
} from "@aws-sdk/client-s3";
import {
    KinesisClient, CreateStreamCommand, DescribeStreamSummaryCommand, PutRecordsCommand,
} from "@aws-sdk/client-kinesis";
import snappyjs from "snappyjs";
import { decompress as zstdDecompress } from "fzstd";

const [sluicedUrl, s3Url] = process.argv.slice(2);
const DEADLINE_MS = 120000;
const MIB = 1 << 20;
const ACCOUNT = "000000000000";
const ROLE = `arn:aws:iam::${ACCOUNT}:role/firehose`;
const S3_KEY = "S3RVER";  // s3rver's only key pair.
const LIST_PAGE = 2;      // Small pages: every listing of more than two objects pages.
const KEYS = Array.from({ length: 16 }, (_, i) => `key-${String(i).padStart(2, "0")}`);

// Every client retries nothing: an error reaches the test as the SDK raised it.
const sdk = { endpoint: sluicedUrl, region: "us-east-1", maxAttempts: 1,
    credentials: { accessKeyId: "AKID", secretAccessKey: "SECRET" } };
const fh = new FirehoseClient(sdk);
const kinesis = new KinesisClient(sdk);
const s3 = new S3Client({ endpoint: s3Url, region: "us-east-1", forcePathStyle: true,
    maxAttempts: 1, credentials: { accessKeyId: S3_KEY, secretAccessKey: S3_KEY },
    // s3rver predates the SDK's default CRC trailers; nothing here needs them.
    requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" });

function check(cond, what) {
    if (!cond)
        throw new Error("FAIL: " + what);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A seeded generator (mulberry32): the same records on every run.
function rng(seed) {
    let a = seed >>> 0;
    const next = () => {
        a = (a + 0x6D2B79F5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    return { below: (n) => Math.floor(next() * n), pick: (list) => list[Math.floor(next() * list.length)] };
}

// ---- Reading the store back ------------------------------------------------------------

const SNAPPY_JAVA_BLOCK = 32768;                          // snappy-java's block size
const HADOOP_SNAPPY_BLOCK = 262144 - (262144 / 6 + 32 | 0); // what Hadoop's 256 KiB buffer takes

// snappy-java's stream (Firehose's Snappy): magic, two BE int32 1, [BE int32 n][block].
function snappyJavaDecode(blob) {
    check(blob.subarray(0, 8).equals(Buffer.from("82534e4150505900", "hex")), "snappy-java magic");
    check(blob.readInt32BE(8) === 1 && blob.readInt32BE(12) === 1, "snappy-java versions");
    const out = [];
    for (let at = 16; at < blob.length;) {
        const n = blob.readInt32BE(at);
        const block = Buffer.from(snappyjs.uncompress(blob.subarray(at + 4, at + 4 + n)));
        check(block.length <= SNAPPY_JAVA_BLOCK, `snappy-java: a block of ${block.length} B`);
        out.push(block);
        at += 4 + n;
    }
    return Buffer.concat(out);
}

// Hadoop's BlockCompressorStream (HADOOP_SNAPPY): [BE u32 raw][BE u32 n][snappy] blocks.
function hadoopSnappyDecode(blob) {
    const out = [];
    for (let at = 0; at < blob.length;) {
        const raw = blob.readUInt32BE(at), n = blob.readUInt32BE(at + 4);
        const block = Buffer.from(snappyjs.uncompress(blob.subarray(at + 8, at + 8 + n)));
        check(block.length === raw, `hadoop-snappy: a block of ${block.length} B says ${raw}`);
        check(raw <= HADOOP_SNAPPY_BLOCK, `hadoop-snappy: a block of ${raw} B, over Hadoop's buffer`);
        out.push(block);
        at += 8 + n;
    }
    return Buffer.concat(out);
}

// ZIP (PKZIP): the end-of-central-directory record names one entry; its central and
// local headers, then the raw deflate data, its CRC-32 and sizes checked.
//   record                    signature    fields read (offsets from the signature)
//   end of central directory  0x06054b50   entries 10 (u16), cd size 12, cd offset 16
//   central directory entry   0x02014b50   method 10, time 12, date 14, crc 16, sizes
//                                          20/24, name length 28, local offset 42, name 46
//   local file header         0x04034b50   name length 26, extra length 28, data at 30+
function zipDecode(blob) {
    const eocd = blob.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    check(eocd >= 0 && eocd + 22 <= blob.length, "ZIP: no end of central directory");
    check(blob.readUInt16LE(eocd + 10) === 1, "ZIP: one entry");
    const cd = blob.readUInt32LE(eocd + 16);
    check(blob.readUInt32LE(cd) === 0x02014b50, "ZIP: central directory signature");
    const method = blob.readUInt16LE(cd + 10), crc = blob.readUInt32LE(cd + 16);
    const packed = blob.readUInt32LE(cd + 20), size = blob.readUInt32LE(cd + 24);
    check(method === 8, "ZIP: deflated");
    // DOS time 0, date 1980-01-01: fixed, so a redo writes the same bytes.
    check(blob.readUInt16LE(cd + 12) === 0 && blob.readUInt16LE(cd + 14) === 0x21, "ZIP: fixed time");
    const entry = blob.subarray(cd + 46, cd + 46 + blob.readUInt16LE(cd + 28)).toString("latin1");
    check(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(entry),
          `ZIP: entry name ${entry} is not UUID-shaped`);
    const local = blob.readUInt32LE(cd + 42);
    check(blob.readUInt32LE(local) === 0x04034b50, "ZIP: local header signature");
    const data = local + 30 + blob.readUInt16LE(local + 26) + blob.readUInt16LE(local + 28);
    const out = zlib.inflateRawSync(blob.subarray(data, data + packed));
    check(out.length === size && zlib.crc32(out) === crc, "ZIP: size and CRC-32");
    return out;
}

// One gzip member whose MTIME is 0 (a redo writes the same bytes).
function gzipDecode(blob) {
    check(blob[0] === 0x1f && blob[1] === 0x8b && blob.readUInt32LE(4) === 0, "gzip: MTIME 0");
    return zlib.gunzipSync(blob);
}

// CompressionFormat: [object key extension, decoder].
const FORMATS = {
    UNCOMPRESSED: ["", (b) => b],
    GZIP: [".gz", gzipDecode],
    ZIP: [".zip", zipDecode],
    Snappy: [".snappy", snappyJavaDecode],
    HADOOP_SNAPPY: [".snappy", hadoopSnappyDecode],
    ZSTD: [".zst", (b) => Buffer.from(zstdDecompress(b))],
};

// {key: decoded bytes} of every object in a bucket (ListObjectsV2 pages, GetObject).
async function objects(bucket, decode) {
    const out = new Map();
    let pages = 0;
    for await (const page of paginateListObjectsV2({ client: s3, pageSize: LIST_PAGE },
                                                     { Bucket: bucket })) {
        pages++;
        check((page.Contents ?? []).length <= LIST_PAGE, `${bucket}: a page over MaxKeys`);
        for (const o of page.Contents ?? []) {
            const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
            const body = Buffer.from(await got.Body.transformToByteArray());
            check(body.length === o.Size, `${o.Key}: ${body.length} B, listed as ${o.Size}`);
            out.set(o.Key, decode(body));
        }
    }
    check(pages === Math.max(1, Math.ceil(out.size / LIST_PAGE)),
          `${bucket}: ${pages} pages for ${out.size} objects`);
    return out;
}

// Waits until `done(objects)` holds; the objects then. s3rver writes an object's file in
// place and lists it meanwhile (its size so far), so a read that fails (a body unlike its
// listed size, bytes that do not decode) is read again: every `done` here asks for every
// byte put, which a partly written object cannot give. A real fault fails at the deadline,
// with the last error.
async function waitObjects(bucket, decode, done, what) {
    const deadline = Date.now() + DEADLINE_MS;
    let why = "too few bytes";
    for (;;) {
        try {
            const objs = await objects(bucket, decode);
            if (done(objs))
                return objs;
        } catch (e) {
            why = e.message;
        }
        check(Date.now() < deadline, `${what}: not delivered within ${DEADLINE_MS / 1000} s (${why})`);
        await sleep(300);
    }
}

const byteCount = (list) => list.reduce((n, b) => n + b.length, 0);
const hasBytes = (total, keep = () => true) => (objs) =>
    byteCount([...objs].filter(([k]) => keep(k)).map(([, d]) => d)) >= total;

// An object's records ('\n' ends each), as latin1 strings (the records are ASCII).
function lines(what, key, data) {
    const recs = data.toString("latin1").split("\n");
    check(recs.pop() === "", `${what}: ${key} does not end on a record`);
    return recs.map((r) => r + "\n");
}

// Every sent record in exactly one object, each object a run of consecutive records.
function checkExactlyOnce(sent, objs, what, sizeMb) {
    const index = new Map(sent.map((r, i) => [r.toString("latin1"), i]));
    const seen = new Set();
    for (const [key, data] of objs) {
        const recs = lines(what, key, data);
        check(recs.length > 0, `${what}: ${key} is empty`);
        const pos = recs.map((r) => index.get(r));
        check(!pos.includes(undefined), `${what}: ${key} holds bytes never sent`);
        check(pos.every((p, i) => p === pos[0] + i), `${what}: ${key} is no run of consecutive records`);
        if (sizeMb !== undefined)
            check(data.length - recs[recs.length - 1].length < sizeMb * MIB,
                  `${what}: ${key} goes on past SizeInMBs`);
        for (const r of recs) {
            check(!seen.has(r), `${what}: delivered twice: ${r.slice(0, 40)}`);
            seen.add(r);
        }
    }
    check(seen.size === sent.length, `${what}: ${sent.length - seen.size} records missing`);
    check(byteCount([...objs.values()]) === byteCount(sent), `${what}: byte count`);
}

// Firehose's default key: YYYY/MM/DD/HH/<name>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid><ext>,
// both times the same instant (UTC), within the run.
const started = Date.now();
function checkDefaultKey(key, prefix, name, version, ext) {
    const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const m = new RegExp(`^${esc(prefix)}(\\d{4})/(\\d\\d)/(\\d\\d)/(\\d\\d)/${esc(name)}-${version}-` +
        `(\\d{4})-(\\d\\d)-(\\d\\d)-(\\d\\d)-(\\d\\d)-(\\d\\d)-` +
        `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}${esc(ext)}$`).exec(key);
    check(m !== null, `${key}: not ${prefix}YYYY/MM/DD/HH/${name}-${version}-<stamp>-<uuid>${ext}`);
    check(m.slice(1, 5).join() === m.slice(5, 9).join(), `${key}: the prefix's hour is not the name's`);
    const at = Date.UTC(m[5], m[6] - 1, m[7], m[8], m[9], m[10]);
    check(at >= started - 1000 && at <= Date.now(), `${key}: a time outside this run`);
}

// ---- Firehose helpers ------------------------------------------------------------------

function s3dest(bucket, compression, extra = {}) {
    return { RoleARN: ROLE, BucketARN: `arn:aws:s3:::${bucket}`, CompressionFormat: compression,
        BufferingHints: { SizeInMBs: 1, IntervalInSeconds: 1 }, ...extra };
}

async function createBucket(name) {
    await s3.send(new CreateBucketCommand({ Bucket: name }));
}

function makeRecords(tag, count, r) {
    return Array.from({ length: count }, (_, i) =>
        Buffer.from(`${tag}-${String(i).padStart(6, "0")}-${"y".repeat(r.below(2000))}\n`));
}

// The first `single` records one PutRecord each, the rest PutRecordBatch by 250: every
// answer's RecordIds (log positions, hex) grow in put order.
async function putAll(name, records, single = 20) {
    const ids = [];
    for (const Data of records.slice(0, single)) {
        const out = await fh.send(new PutRecordCommand({ DeliveryStreamName: name, Record: { Data } }));
        check(out.Encrypted === false, `${name}: PutRecord Encrypted ${out.Encrypted}`);
        ids.push(out.RecordId);
    }
    for (let i = single; i < records.length; i += 250) {
        const batch = records.slice(i, i + 250);
        const out = await fh.send(new PutRecordBatchCommand({ DeliveryStreamName: name,
            Records: batch.map((Data) => ({ Data })) }));
        check(out.FailedPutCount === 0 && out.RequestResponses.length === batch.length,
              `${name}: PutRecordBatch ${out.FailedPutCount} failed of ${out.RequestResponses.length}`);
        ids.push(...out.RequestResponses.map((x) => x.RecordId));
    }
    check(ids.every((id, i) => /^[0-9a-f]{32}$/.test(id) && (i === 0 || id > ids[i - 1])),
          `${name}: RecordIds not growing in put order`);
}

// The SDK's error for `command`: its modelled class (when given), name, fault, HTTP status
// and a message containing `text`.
async function expectError(command, Class, name, text, status = 400) {
    try {
        await fh.send(command);
    } catch (e) {
        const what = `${command.constructor.name}: ${e.name} (${e.message})`;
        check(e.name === name, `${what}: expected ${name}`);
        check(Class === undefined || e instanceof Class, `${what}: not the SDK's ${name} class`);
        check(e.$fault === (status < 500 ? "client" : "server"), `${what}: $fault ${e.$fault}`);
        check(e.$metadata.httpStatusCode === status, `${what}: HTTP ${e.$metadata.httpStatusCode}`);
        check(text === undefined || e.message.includes(text), `${what}: message lacks "${text}"`);
        return e;
    }
    throw new Error(`FAIL: ${command.constructor.name} succeeded, expected ${name}`);
}

const describe = async (name) => (await fh.send(new DescribeDeliveryStreamCommand(
    { DeliveryStreamName: name }))).DeliveryStreamDescription;

// ---- 1. DirectPut, every format --------------------------------------------------------

async function testFormats() {
    const r = rng(316), sent = {};
    for (const [format, [ext]] of Object.entries(FORMATS)) {
        const name = "js-" + format.toLowerCase().replace("_", "-");
        await createBucket(name);
        await fh.send(new CreateDeliveryStreamCommand({ DeliveryStreamName: name,
            ExtendedS3DestinationConfiguration: s3dest(name, format) }));
        sent[format] = makeRecords(name, 2500, r);
        await putAll(name, sent[format]);
    }
    for (const [format, [ext, decode]] of Object.entries(FORMATS)) {
        const name = "js-" + format.toLowerCase().replace("_", "-");
        const objs = await waitObjects(name, decode, hasBytes(byteCount(sent[format])), name);
        checkExactlyOnce(sent[format], objs, name, 1);
        check(objs.size >= 2, `${name}: ${objs.size} objects for 2.5 MB at SizeInMBs 1`);
        for (const key of objs.keys())
            checkDefaultKey(key, "", name, 1, ext);
    }
    console.log("ok: DirectPut in every format (%s), read back with client-s3, each record " +
                "exactly once, Firehose's object names", Object.keys(FORMATS).join(", "));
}

// ---- 2. KinesisStreamAsSource ----------------------------------------------------------

async function makeKinesisStream(name, shards) {
    await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
    const deadline = Date.now() + DEADLINE_MS;
    while ((await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name })))
        .StreamDescriptionSummary.StreamStatus !== "ACTIVE") {
        check(Date.now() < deadline, `stream ${name} not ACTIVE`);
        await sleep(50);
    }
}

// PutRecords `count` records ("tag key n padding\n"), the throttled ones again: the
// acknowledged ones, in put order.
async function putKinesis(name, tag, count, r) {
    const sent = [];
    for (let at = 0; at < count; at += 500) {
        let batch = [];
        for (let i = at; i < Math.min(count, at + 500); i++) {
            const key = r.pick(KEYS);
            batch.push({ PartitionKey: key,
                Data: Buffer.from(`${tag} ${key} ${String(i).padStart(6, "0")} ${"z".repeat(r.below(300))}\n`) });
        }
        while (batch.length > 0) {
            const out = await kinesis.send(new PutRecordsCommand({ StreamName: name, Records: batch }));
            const failed = [];
            out.Records.forEach((res, i) => (res.ErrorCode ? failed : sent).push(
                res.ErrorCode ? batch[i] : batch[i].Data));
            batch = failed;
        }
    }
    return sent;
}

async function testStreamSource() {
    const name = "js-source", arn = `arn:aws:kinesis:us-east-1:${ACCOUNT}:stream/${name}`;
    await createBucket(name);
    await makeKinesisStream(name, 2);
    await fh.send(new CreateDeliveryStreamCommand({ DeliveryStreamName: name,
        DeliveryStreamType: "KinesisStreamAsSource",
        KinesisStreamSourceConfiguration: { KinesisStreamARN: arn, RoleARN: ROLE },
        ExtendedS3DestinationConfiguration: s3dest(name, "GZIP") }));
    const d = await describe(name);
    check(d.DeliveryStreamType === "KinesisStreamAsSource" &&
          d.Source.KinesisStreamSourceDescription.KinesisStreamARN === arn &&
          d.Source.KinesisStreamSourceDescription.DeliveryStartTimestamp instanceof Date,
          `describe of a stream-sourced stream: ${JSON.stringify(d.Source)}`);
    await expectError(new PutRecordCommand({ DeliveryStreamName: name, Record: { Data: Buffer.from("x") } }),
        InvalidArgumentException, "InvalidArgumentException",
        "This operation is not permitted on KinesisStreamAsSource delivery stream type.");
    const sent = await putKinesis(name, "src", 3000, rng(16));
    const objs = await waitObjects(name, FORMATS.GZIP[1], hasBytes(byteCount(sent)), name);
    // Exactly once, and within an object (one shard's range) a key's records in put order.
    const want = new Map(sent.map((b, i) => [b.toString("latin1"), i]));
    const got = new Set();
    for (const [key, data] of objs) {
        checkDefaultKey(key, "", name, 1, ".gz");
        const last = new Map();
        for (const rec of lines(name, key, data)) {
            const i = want.get(rec), pk = rec.split(" ")[1];
            check(i !== undefined && !got.has(rec), `${name}: ${key}: unknown or repeated ${rec.slice(0, 30)}`);
            check(!(last.get(pk) > i), `${name}: ${key}: ${pk}'s records out of order`);
            last.set(pk, i);
            got.add(rec);
        }
    }
    check(got.size === sent.length, `${name}: ${got.size} of ${sent.length} records`);
    check(byteCount([...objs.values()]) === byteCount(sent), `${name}: bytes`);
    console.log("ok: KinesisStreamAsSource fed by client-kinesis PutRecords (2 shards): " +
                "%d records exactly once in %d objects", sent.length, objs.size);
}

// ---- 3. Dynamic partitioning and ErrorOutputPrefix -------------------------------------

async function testPartitioning() {
    const name = "js-partitioned", r = rng(9);
    await createBucket(name);
    await fh.send(new CreateDeliveryStreamCommand({ DeliveryStreamName: name,
        ExtendedS3DestinationConfiguration: s3dest(name, "GZIP", {
            Prefix: "customer=!{partitionKeyFromQuery:customer}/",
            ErrorOutputPrefix: "errors/!{firehose:error-output-type}/",
            DynamicPartitioningConfiguration: { Enabled: true },
            ProcessingConfiguration: { Enabled: true, Processors: [{ Type: "MetadataExtraction",
                Parameters: [
                    { ParameterName: "MetadataExtractionQuery", ParameterValue: "{customer:.customer}" },
                    { ParameterName: "JsonParsingEngine", ParameterValue: "JQ-1.6" }] }] } }) }));
    const good = new Map(), bad = [], sent = [];
    for (let i = 0; i < 2000; i++) {
        const c = r.pick(["acme", "globex", 42]);
        const rec = Buffer.from(JSON.stringify({ customer: c, n: i, pad: "p".repeat(r.below(400)) }) + "\n");
        good.set(String(c), [...(good.get(String(c)) ?? []), rec]);
        sent.push(rec);
        if (i % 100 === 7) {  // Not JSON; no customer: both to ErrorOutputPrefix.
            for (const b of [`not json ${i}\n`, JSON.stringify({ n: i }) + "\n"]) {
                bad.push(Buffer.from(b));
                sent.push(Buffer.from(b));
            }
        }
    }
    await putAll(name, sent);
    const total = byteCount([...good.values()].flat());
    const errorCount = (objs) => [...objs].filter(([k]) => k.startsWith("errors/"))
        .reduce((n, [, d]) => n + d.toString().split("\n").length - 1, 0);
    const objs = await waitObjects(name, FORMATS.GZIP[1], (o) =>
        hasBytes(total, (k) => k.startsWith("customer="))(o) && errorCount(o) >= bad.length, name);
    for (const [c, recs] of good) {
        const mine = new Map([...objs].filter(([k]) => k.startsWith(`customer=${c}/`)));
        check(mine.size > 0, `no object under customer=${c}/`);
        for (const key of mine.keys())
            checkDefaultKey(key, `customer=${c}/`, name, 1, ".gz");
        checkExactlyOnce(recs, mine, `partition ${c}`);
    }
    const failed = [];
    for (const [key, data] of objs) {
        if (key.startsWith("customer="))
            continue;
        checkDefaultKey(key, "errors/partitioning-failed/", name, 1, ".gz");
        for (const line of lines(name, key, data)) {
            const e = JSON.parse(line);
            check(e.errorCode.startsWith("DynamicPartitioning.") && e.attemptsMade === 1 &&
                  typeof e.errorMessage === "string" && e.arrivalTimestamp >= started - 1000,
                  `error record ${line}`);
            failed.push(Buffer.from(e.rawData, "base64").toString("latin1"));
        }
    }
    const badText = bad.map((b) => b.toString("latin1"));
    check(JSON.stringify(failed.sort()) === JSON.stringify(badText.sort()),
          `error records: ${failed.length}, expected ${bad.length}`);
    console.log("ok: dynamic partitioning: %d prefixes, each record once and in order; %d " +
                "records under errors/partitioning-failed/", good.size, bad.length);
}

// ---- 4. Describe, List, UpdateDestination, tags, Delete --------------------------------

async function listAll(params) {
    const names = [];
    for (let start;;) {
        const out = await fh.send(new ListDeliveryStreamsCommand(
            { ...params, Limit: 2, ExclusiveStartDeliveryStreamName: start }));
        check(out.DeliveryStreamNames.length <= 2, "ListDeliveryStreams: a page over Limit");
        names.push(...out.DeliveryStreamNames);
        if (!out.HasMoreDeliveryStreams)
            return names;
        start = names[names.length - 1];
    }
}

async function tagsOf(name) {
    const tags = [];
    for (let start;;) {
        const out = await fh.send(new ListTagsForDeliveryStreamCommand(
            { DeliveryStreamName: name, Limit: 2, ExclusiveStartTagKey: start }));
        tags.push(...out.Tags);
        if (!out.HasMoreTags)
            return tags;
        start = tags[tags.length - 1].Key;
    }
}

async function testManage() {
    const name = "js-manage", bucket = "js-manage", r = rng(77);
    await createBucket(bucket);
    await fh.send(new CreateDeliveryStreamCommand({ DeliveryStreamName: name,
        ExtendedS3DestinationConfiguration: s3dest(bucket, "UNCOMPRESSED", { Prefix: "v1/" }),
        Tags: [{ Key: "team", Value: "ingest" }] }));
    let d = await describe(name);
    const ext = d.Destinations[0].ExtendedS3DestinationDescription;
    check(d.DeliveryStreamName === name && d.DeliveryStreamStatus === "ACTIVE" &&
          d.DeliveryStreamType === "DirectPut" && d.VersionId === "1" &&
          d.DeliveryStreamARN === `arn:aws:firehose:us-east-1:${ACCOUNT}:deliverystream/${name}` &&
          d.CreateTimestamp instanceof Date && d.HasMoreDestinations === false &&
          d.Destinations[0].DestinationId === "destinationId-000000000001" &&
          ext.BucketARN === `arn:aws:s3:::${bucket}` && ext.Prefix === "v1/" &&
          ext.CompressionFormat === "UNCOMPRESSED" && ext.BufferingHints.SizeInMBs === 1 &&
          ext.BufferingHints.IntervalInSeconds === 1, `describe: ${JSON.stringify(d)}`);

    // Version 1's records, then UpdateDestination (merged: BufferingHints kept), then
    // version 2's records under the new prefix, compressed as it says, named "-2-".
    const v1 = makeRecords("v1", 200, r), v2 = makeRecords("v2", 200, r);
    await putAll(name, v1);
    await waitObjects(bucket, FORMATS.UNCOMPRESSED[1], hasBytes(byteCount(v1)), "version 1");
    await fh.send(new UpdateDestinationCommand({ DeliveryStreamName: name,
        CurrentDeliveryStreamVersionId: "1", DestinationId: "destinationId-000000000001",
        ExtendedS3DestinationUpdate: { Prefix: "v2/", CompressionFormat: "GZIP" } }));
    d = await describe(name);
    const ext2 = d.Destinations[0].ExtendedS3DestinationDescription;
    check(d.VersionId === "2" && d.LastUpdateTimestamp instanceof Date && ext2.Prefix === "v2/" &&
          ext2.CompressionFormat === "GZIP" && ext2.BufferingHints.SizeInMBs === 1,
          `describe after the update: ${JSON.stringify(d)}`);
    await putAll(name, v2);
    // Raw bytes: version 1's objects are plain, version 2's gzip.
    const v2Bytes = (o) => byteCount([...o].filter(([k]) => k.startsWith("v2/"))
        .map(([, b]) => zlib.gunzipSync(b)));
    const objs = await waitObjects(bucket, (b) => b, (o) => v2Bytes(o) >= byteCount(v2), "version 2");
    const part = (p, decode) => new Map([...objs].filter(([k]) => k.startsWith(p)).map(([k, b]) => [k, decode(b)]));
    const old = part("v1/", (b) => b), now = part("v2/", (b) => zlib.gunzipSync(b));
    for (const key of old.keys())
        checkDefaultKey(key, "v1/", name, 1, "");
    for (const key of now.keys())
        checkDefaultKey(key, "v2/", name, 2, ".gz");
    checkExactlyOnce(v1, old, "version 1");
    checkExactlyOnce(v2, now, "version 2");
    check(old.size + now.size === objs.size, "objects outside v1/ and v2/");
    await expectError(new UpdateDestinationCommand({ DeliveryStreamName: name,
        CurrentDeliveryStreamVersionId: "1", DestinationId: "destinationId-000000000001",
        ExtendedS3DestinationUpdate: { Prefix: "v3/" } }), ConcurrentModificationException,
        "ConcurrentModificationException", "do not match");
    await expectError(new UpdateDestinationCommand({ DeliveryStreamName: name,
        CurrentDeliveryStreamVersionId: "2", DestinationId: "destinationId-000000000009",
        ExtendedS3DestinationUpdate: { Prefix: "v3/" } }), InvalidArgumentException,
        "InvalidArgumentException", "Destination Id");

    // Tags: added, listed in key order two a page, removed; the 51st refused.
    await fh.send(new TagDeliveryStreamCommand({ DeliveryStreamName: name, Tags:
        ["e", "b", "d", "a"].map((k) => ({ Key: k, Value: "v-" + k })) }));
    let tags = await tagsOf(name);
    check(tags.map((t) => `${t.Key}=${t.Value}`).join() === "a=v-a,b=v-b,d=v-d,e=v-e,team=ingest",
          `tags: ${JSON.stringify(tags)}`);
    await fh.send(new UntagDeliveryStreamCommand({ DeliveryStreamName: name, TagKeys: ["b", "team"] }));
    tags = await tagsOf(name);
    check(tags.map((t) => t.Key).join() === "a,d,e", `tags after untag: ${JSON.stringify(tags)}`);
    await expectError(new TagDeliveryStreamCommand({ DeliveryStreamName: name, Tags:
        Array.from({ length: 48 }, (_, i) => ({ Key: `k${i}`, Value: "v" })) }),
        LimitExceededException, "LimitExceededException", "would have more than 50 tags");
    check((await tagsOf(name)).length === 3, "a refused TagDeliveryStream kept tags");

    // List: every stream of the test so far, in name order, two a page; by type.
    const all = await listAll({});
    check(all.length === 9 && all.join() === [...all].sort().join() && all.includes(name),
          `ListDeliveryStreams: ${all}`);
    check((await listAll({ DeliveryStreamType: "KinesisStreamAsSource" })).join() === "js-source",
          "ListDeliveryStreams by type KinesisStreamAsSource");
    check((await listAll({ DeliveryStreamType: "DirectPut" })).length === 8,
          "ListDeliveryStreams by type DirectPut");

    // Encryption with AWS's own key (no keyring here): the status, and puts say Encrypted.
    await fh.send(new StartDeliveryStreamEncryptionCommand({ DeliveryStreamName: name,
        DeliveryStreamEncryptionConfigurationInput: { KeyType: "AWS_OWNED_CMK" } }));
    const enc = (await describe(name)).DeliveryStreamEncryptionConfiguration;
    check(enc.Status === "ENABLED" && enc.KeyType === "AWS_OWNED_CMK", `encryption: ${JSON.stringify(enc)}`);
    check((await fh.send(new PutRecordCommand({ DeliveryStreamName: name,
        Record: { Data: Buffer.from("sealed\n") } }))).Encrypted === true, "PutRecord: not Encrypted");
    await fh.send(new StopDeliveryStreamEncryptionCommand({ DeliveryStreamName: name }));
    check((await describe(name)).DeliveryStreamEncryptionConfiguration.Status === "DISABLED",
          "encryption not DISABLED after Stop");
    await expectError(new StartDeliveryStreamEncryptionCommand({ DeliveryStreamName: "js-source" }),
        InvalidArgumentException, "InvalidArgumentException",
        "This operation is not permitted on KinesisStreamAsSource delivery stream type.");

    await fh.send(new DeleteDeliveryStreamCommand({ DeliveryStreamName: name }));
    await expectError(new DescribeDeliveryStreamCommand({ DeliveryStreamName: name }),
        ResourceNotFoundException, "ResourceNotFoundException",
        `Firehose ${name} under account ${ACCOUNT} not found.`);
    check(!(await listAll({})).includes(name), "a deleted stream is listed");
    console.log("ok: Describe, List (pages, type), UpdateDestination (version 2's prefix, " +
                "GZIP and name), tags (pages, 50 at most), Start/StopDeliveryStreamEncryption, Delete");
}

// ---- 5. Errors as the SDK surfaces them ------------------------------------------------

async function testErrors() {
    const name = "js-gzip";  // Exists (part 1).
    await expectError(new CreateDeliveryStreamCommand({ DeliveryStreamName: name,
        ExtendedS3DestinationConfiguration: s3dest("b", "GZIP") }), ResourceInUseException,
        "ResourceInUseException", `Firehose ${name} under accountId ${ACCOUNT} already exists`);
    await expectError(new CreateDeliveryStreamCommand({ DeliveryStreamName: "n".repeat(65),
        ExtendedS3DestinationConfiguration: s3dest("b", "GZIP") }), undefined,
        "ValidationException", "Member must have length less than or equal to 64");
    await expectError(new CreateDeliveryStreamCommand({ DeliveryStreamName: "v",
        ExtendedS3DestinationConfiguration: s3dest("b", "SNAPPY") }), undefined,
        "ValidationException", "Member must satisfy enum value set");
    await expectError(new CreateDeliveryStreamCommand({ DeliveryStreamName: "v" }),
        InvalidArgumentException, "InvalidArgumentException",
        "Exactly one destination configuration is supported for a Firehose");
    await expectError(new CreateDeliveryStreamCommand({ DeliveryStreamName: "v",
        ExtendedS3DestinationConfiguration: s3dest("b", "GZIP", { Prefix: "!{timestamp:yyyy}/" }) }),
        InvalidArgumentException, "InvalidArgumentException",
        "ErrorOutputPrefix cannot be null or empty when Prefix contains expressions");
    await expectError(new PutRecordCommand({ DeliveryStreamName: "nope", Record: { Data: Buffer.from("x") } }),
        ResourceNotFoundException, "ResourceNotFoundException",
        `Firehose nope under account ${ACCOUNT} not found.`);
    await expectError(new PutRecordCommand({ DeliveryStreamName: name,
        Record: { Data: Buffer.alloc(1024001, 0x61) } }), undefined, "ValidationException",
        "Member must have length less than or equal to 1024000");
    await expectError(new PutRecordBatchCommand({ DeliveryStreamName: name,
        Records: Array.from({ length: 501 }, () => ({ Data: Buffer.from("x") })) }), undefined,
        // Java's rendering of all 501 entries, cut at 2 KiB (before the constraint's text).
        "ValidationException", "1 validation error detected: Value '[com.amazonaws.firehose." +
        "v20150804.Record@");
    await expectError(new PutRecordBatchCommand({ DeliveryStreamName: name,
        Records: Array.from({ length: 5 }, () => ({ Data: Buffer.alloc(1000000, 0x62) })) }),
        InvalidArgumentException, "InvalidArgumentException", "Records size exceeds 4 MB limit");
    await expectError(new DeleteDeliveryStreamCommand({ DeliveryStreamName: "nope" }),
        ResourceNotFoundException, "ResourceNotFoundException", "not found");
    // A wrong secret: the signature is checked (sluiced runs with [auth] mode = sigv4).
    const forged = new FirehoseClient({ ...sdk, credentials: { accessKeyId: "AKID", secretAccessKey: "WRONG" } });
    try {
        await forged.send(new ListDeliveryStreamsCommand({}));
        throw new Error("FAIL: a request signed with the wrong secret was served");
    } catch (e) {
        check(e.name === "InvalidSignatureException" && e.$metadata.httpStatusCode === 400,
              `wrong secret: ${e.name} HTTP ${e.$metadata?.httpStatusCode} (${e.message})`);
    }
    forged.destroy();
    console.log("ok: AWS errors through the SDK: class, name, $fault, HTTP status, message");
}

try {
    await testFormats();
    await testStreamSource();
    await testPartitioning();
    await testManage();
    await testErrors();
    for (const c of [fh, kinesis, s3])
        c.destroy();
    process.exit(0);
} catch (err) {
    console.error(err.message.startsWith("FAIL") ? err.message :
                  `FAIL: ${err.name}: ${err.message}\n${err.stack}`);
    process.exit(1);
}
