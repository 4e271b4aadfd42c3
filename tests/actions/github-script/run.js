// Executes `script` like actions/github-script does (an async function of github, context, core, require),
// with a fake client whose issue comments are stored in the JSON file $ADAPTERCI_STUB_GITHUB_STATE (comments it
// creates are the bot's: `user` github-actions[bot]; a test may seed others' comments in that file).
const fs = require("fs");

const statePath = process.env.ADAPTERCI_STUB_GITHUB_STATE;
const load = () => (fs.existsSync(statePath) ? JSON.parse(fs.readFileSync(statePath, "utf8")) : { comments: [] });
const save = (state) => fs.writeFileSync(statePath, JSON.stringify(state, null, 2));

const issues = {
  async listComments({ issue_number }) {
    return { data: load().comments.filter((c) => c.issue_number === issue_number) };
  },
  async createComment({ issue_number, body }) {
    const state = load();
    const comment = { id: state.comments.length + 1, issue_number, body, user: { login: "github-actions[bot]", type: "Bot" } };
    state.comments.push(comment);
    save(state);
    return { data: comment };
  },
  async updateComment({ comment_id, body }) {
    const state = load();
    const comment = state.comments.find((c) => c.id === comment_id);
    if (!comment) throw new Error(`no comment ${comment_id}`);
    comment.body = body;
    save(state);
    return { data: comment };
  },
};
const github = {
  rest: { issues },
  async paginate(method, args) {
    return (await method(args)).data;
  },
};
const payload = JSON.parse(fs.readFileSync(process.env.GITHUB_EVENT_PATH, "utf8"));
const [owner, repo] = (process.env.GITHUB_REPOSITORY || "owner/repo").split("/");
const context = { payload, repo: { owner, repo }, issue: { owner, repo, number: (payload.pull_request || {}).number } };
const core = {
  info: console.log,
  warning: (m) => console.log(`::warning::${m}`),
  setFailed: (m) => { console.log(`::error::${m}`); process.exitCode = 1; },
};
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction("github", "context", "core", "require", process.env.INPUT_SCRIPT)(github, context, core, require)
  .catch((err) => { console.error(err); process.exit(1); });
