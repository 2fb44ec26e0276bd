// Preloaded with `node --require`: every server this process starts listens on 127.0.0.1 only (the Portkey
// gateway's start-server.js passes a port but no host, which would listen on every interface).
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number") {
    const callback = args.find((a) => typeof a === "function");
    return callback ? listen.call(this, args[0], "127.0.0.1", callback) : listen.call(this, args[0], "127.0.0.1");
  }
  if (args[0] && typeof args[0] === "object" && !args[0].path) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};
