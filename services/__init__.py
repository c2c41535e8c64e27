"""What both front ends (the `lienthong` CLI in workers/, the HTTP gateway) do, once:
the typed dossier client, submission, the process-control sheet, deploy, tokens.
It imports the layers below (store, workflows, definitions, config), never a front end."""
