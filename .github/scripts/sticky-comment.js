// The one sticky report comment of a pull request, for actions/github-script:
//   await require(`${process.env.GITHUB_WORKSPACE}/.github/scripts/sticky-comment.js`)({ github, context, core }, path, number)
// Updates the comment that carries the marker *and was written by this workflow's bot*; anyone else can post a
// comment with the marker, and such a comment is never edited. The report's data-derived text is escaped by
// adapterci (adapterci/report.py), so the body is posted as is.
const fs = require("fs");

const MARKER = "<!-- adapterci-report -->";
const BOT = "github-actions[bot]";

module.exports = async ({ github, context, core }, path, number) => {
  if (!fs.existsSync(path)) {
    core.setFailed(`no report was produced (${path})`);
    return;
  }
  const issue_number = Number(number);
  if (!Number.isInteger(issue_number) || issue_number < 1) {
    core.setFailed(`not a pull request number: ${number}`);
    return;
  }
  let body = fs.readFileSync(path, "utf8");
  if (!body.includes(MARKER)) body = `${MARKER}\n${body}`;
  const { owner, repo } = context.repo;
  const comments = await github.paginate(github.rest.issues.listComments, { owner, repo, issue_number, per_page: 100 });
  const sticky = comments.find(
    (c) => c.user && c.user.type === "Bot" && c.user.login === BOT && c.body && c.body.includes(MARKER),
  );
  if (sticky) {
    await github.rest.issues.updateComment({ owner, repo, comment_id: sticky.id, body });
    core.info(`updated comment ${sticky.id}`);
  } else {
    const { data } = await github.rest.issues.createComment({ owner, repo, issue_number, body });
    core.info(`created comment ${data.id}`);
  }
};
