// The Moleculer side of the peer, in its own process: a broker with one service,
// "bench", whose `echo` action returns the text it was given.
import { ServiceBroker, type Context } from "moleculer";
import { onStop, readConfig, signalReady } from "./child.js";
import { brokerOptions, type EchoParams, type MoleculerWorkerConfig } from "./moleculer.js";

const { namespace } = readConfig<MoleculerWorkerConfig>();
const broker = new ServiceBroker(brokerOptions(namespace, `worker-${process.pid}`));

broker.createService({
  name: "bench",
  actions: {
    echo: (ctx: Context<EchoParams>) => ctx.params.text,
  },
});

await broker.start();
onStop(() => broker.stop());
signalReady();
