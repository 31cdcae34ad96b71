import { createRequire } from "module";
import jwt from "jsonwebtoken";
const require = createRequire(import.meta.url);
const token = jwt.sign({ sub: "alice", workspaces: ["ws1"] }, "smoke-secret", { expiresIn: 60 });
const v2 = require("socket.io-client-v2");
const s2 = v2("http://127.0.0.1:18090/public", { query: { token } });
s2.on("connect", () => { console.log("v2 connected"); s2.emit("register", { workspace: "ws1" }, a => { console.log("v2 ack", a); process.exit(0); }); });
s2.on("error", e => console.log("v2 error", e));
s2.on("connect_error", e => console.log("v2 connect_error", e));
