// subscribe.mjs ENDPOINT CONSUMER_ARN SHARD_ID COUNT - the JS SDK v3's own client
// (@aws-sdk/client-kinesis, its default request handler: HTTP/2 for SubscribeToShard)
// reads COUNT records from TRIM_HORIZON and prints them as JSON lines
// {"seq": ..., "data": base64}. COUNT "children": every record up to the event that
// carries ChildShards (a split or merged shard's end), then {"children": [ids]}.
// Exits 1 on any error.
import { writeSync } from "node:fs";
import { KinesisClient, SubscribeToShardCommand } from "@aws-sdk/client-kinesis";

const [endpoint, consumerARN, shardId, countText] = process.argv.slice(2);
const untilChildren = countText === "children";
const want = untilChildren ? Infinity : Number(countText);
const client = new KinesisClient({
    endpoint, region: "us-east-1",
    credentials: { accessKeyId: "AKID", secretAccessKey: "SECRET" },
});
let got = 0;
let children = null;
let position = { Type: "TRIM_HORIZON" };
try {
    while (got < want && children === null) {
        const out = await client.send(new SubscribeToShardCommand({
            ConsumerARN: consumerARN, ShardId: shardId, StartingPosition: position,
        }));
        for await (const event of out.EventStream) {
            const e = event.SubscribeToShardEvent;
            if (!e)
                continue;
            for (const r of e.Records) {
                // writeSync: console.log to a pipe is asynchronous, and process.exit()
                // below dropped what the pipe (64 KiB) had not taken yet.
                writeSync(1, JSON.stringify({ seq: r.SequenceNumber,
                    data: Buffer.from(r.Data).toString("base64") }) + "\n");
                got++;
            }
            position = { Type: "AFTER_SEQUENCE_NUMBER",
                SequenceNumber: e.ContinuationSequenceNumber };
            if (untilChildren && e.ChildShards && e.ChildShards.length > 0) {
                children = e.ChildShards.map((c) => c.ShardId);
                writeSync(1, JSON.stringify({ children }) + "\n");
                break;
            }
            if (got >= want)
                break;
        }
    }
    client.destroy();
    process.exit(0);
} catch (err) {
    console.error("subscribe.mjs: " + (err.name || "") + ": " + err.message);
    process.exit(1);
}
