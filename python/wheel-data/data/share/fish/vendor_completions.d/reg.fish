# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_reg_global_optspecs
    string join \n registry= q/quiet wait-timeout= h/help V/version
end

function __fish_reg_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_reg_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_reg_using_subcommand
    set -l cmd (__fish_reg_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c reg -n "__fish_reg_needs_command" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_needs_command" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_needs_command" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_needs_command" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_needs_command" -s V -l version -d 'Print version'
complete -c reg -n "__fish_reg_needs_command" -f -a "init" -d 'Create a registry (optional: every command creates one on first use)'
complete -c reg -n "__fish_reg_needs_command" -f -a "push" -d 'Store a checkpoint file as a new version'
complete -c reg -n "__fish_reg_needs_command" -f -a "pull" -d 'Write a version back to a file, byte for byte'
complete -c reg -n "__fish_reg_needs_command" -f -a "stage" -d 'Stream one file of a staging session from stdin, its tensor chunks straight into blobs (the DCP writer\'s ranks; `reg push --staged` makes the version)'
complete -c reg -n "__fish_reg_needs_command" -f -a "show" -d 'Describe one version: metadata, optimizer, tensors'
complete -c reg -n "__fish_reg_needs_command" -f -a "cat" -d 'Write byte ranges of one file of a version to stdout, reading only the blobs they overlap'
complete -c reg -n "__fish_reg_needs_command" -f -a "locate" -d 'Where a version\'s tensors lie on disk as they are, for a loader that maps them'
complete -c reg -n "__fish_reg_needs_command" -f -a "log" -d 'List the versions of a model'
complete -c reg -n "__fish_reg_needs_command" -f -a "ls" -d 'List models'
complete -c reg -n "__fish_reg_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c reg -n "__fish_reg_needs_command" -f -a "manpage" -d 'Print the man page (roff), or write one page per command into DIR'
complete -c reg -n "__fish_reg_needs_command" -f -a "stats" -d 'Registry size and deduplication numbers'
complete -c reg -n "__fish_reg_needs_command" -f -a "diff" -d 'Show what changed between two versions (of one model or of two)'
complete -c reg -n "__fish_reg_needs_command" -f -a "verify" -d 'Check versions against the blob store (exit 2 when damage is found)'
complete -c reg -n "__fish_reg_needs_command" -f -a "rm" -d 'Remove a version (its blobs are freed by `reg gc`)'
complete -c reg -n "__fish_reg_needs_command" -f -a "deltas" -d 'Store older versions as deltas against the newer ones (push starts this in the background after each version it adds)'
complete -c reg -n "__fish_reg_needs_command" -f -a "gc" -d 'Delete blobs no version needs'
complete -c reg -n "__fish_reg_needs_command" -f -a "prune" -d 'Remove old versions of a model, keeping the newest, best and tagged'
complete -c reg -n "__fish_reg_needs_command" -f -a "bench" -d 'Measure push, pull and diff against cp on a generated training run'
complete -c reg -n "__fish_reg_needs_command" -f -a "tag" -d 'Tag a version, or delete a tag with -d NAME@TAG'
complete -c reg -n "__fish_reg_needs_command" -f -a "remote" -d 'Manage remotes (S3-compatible object stores or shared directories)'
complete -c reg -n "__fish_reg_needs_command" -f -a "sync" -d 'Transfer versions between the registry and a remote'
complete -c reg -n "__fish_reg_needs_command" -f -a "serve" -d 'Serve a read-only web view of the registry: pages, JSON, downloads'
complete -c reg -n "__fish_reg_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c reg -n "__fish_reg_using_subcommand init" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand init" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand init" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand init" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand init" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand push" -l source -d 'The file name a version read from `-` records (what `reg pull` writes by default; the model name defaults to its stem)' -r
complete -c reg -n "__fish_reg_using_subcommand push" -s n -l name -d 'Model name (default: registry.toml default_name, else the file stem)' -r
complete -c reg -n "__fish_reg_using_subcommand push" -s t -l tag -d 'Tag the new version' -r
complete -c reg -n "__fish_reg_using_subcommand push" -s m -l message -d 'A message to keep with the version' -r
complete -c reg -n "__fish_reg_using_subcommand push" -l parent -d 'Store changed float tensors as deltas against this version\'s (NAME@REF; a fine-tune against its base model)' -r
complete -c reg -n "__fish_reg_using_subcommand push" -l keep-optimizer-last -d 'Then drop optimizer state from all but the newest N versions of the name (as `keep_optimizer_last`; done by the background job, so the push does not wait for it)' -r
complete -c reg -n "__fish_reg_using_subcommand push" -l staged -d 'The pushed folder is in this staging session (`staging/ID` of the registry), whose files `reg stage` streamed: their hashes and chunks come from its records (the DCP writer\'s coordinator)' -r -F
complete -c reg -n "__fish_reg_using_subcommand push" -l remote -d 'A remote from registry.toml (`reg remote ls`), or an s3:// / file:// URL' -r
complete -c reg -n "__fish_reg_using_subcommand push" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand push" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand push" -l allow-unsafe -d 'Store files whose pickle would run dangerous code when loaded'
complete -c reg -n "__fish_reg_using_subcommand push" -l fast -d 'Store the new tensors uncompressed and leave their compression to the background job: the push costs what hashing and writing cost (a save in the training loop). Compressed later, same bytes'
complete -c reg -n "__fish_reg_using_subcommand push" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand push" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand push" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand pull" -s o -l output -d 'Output path (default: the original file name in the working directory); `-` writes to stdout' -r -F
complete -c reg -n "__fish_reg_using_subcommand pull" -l files -d 'For a directory version: write only the files this glob matches (repeatable; `*` does not cross `/`, `**` does)' -r
complete -c reg -n "__fish_reg_using_subcommand pull" -l format -d 'Write the state dict in another format instead of the original bytes' -r -f -a "safetensors\t'The state dict as safetensors, with epoch, step and hparams in `__metadata__`'"
complete -c reg -n "__fish_reg_using_subcommand pull" -l tensors -d 'With --format safetensors: only the tensors whose name (as in the export: state-dict keys) this glob matches (repeatable; `*` matches any characters, `\\` escapes one). Only their blobs are read (and fetched, with --remote)' -r
complete -c reg -n "__fish_reg_using_subcommand pull" -l by -d 'Pick the version with the best score of this metric (as `@best:METRIC`)' -r
complete -c reg -n "__fish_reg_using_subcommand pull" -l mode -d 'Whether lower (min) or higher (max) scores are better (default: the callback\'s mode)' -r -f -a "min\t'Lower is better'
max\t'Higher is better'"
complete -c reg -n "__fish_reg_using_subcommand pull" -l remote -d 'A remote from registry.toml (`reg remote ls`), or an s3:// / file:// URL' -r
complete -c reg -n "__fish_reg_using_subcommand pull" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand pull" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand pull" -s f -l force -d 'Overwrite an existing output file (or folder)'
complete -c reg -n "__fish_reg_using_subcommand pull" -l weights-only -d 'Write a new torch checkpoint with only what Lightning\'s save_weights_only keeps (loads with torch.load(weights_only=True)); with --format safetensors: only model weights'
complete -c reg -n "__fish_reg_using_subcommand pull" -l header-only -d 'With --format safetensors: only the file\'s header (tensor names, dtypes, shapes, data offsets and metadata); no tensor is read'
complete -c reg -n "__fish_reg_using_subcommand pull" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand pull" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand pull" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reg -n "__fish_reg_using_subcommand stage" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand stage" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand stage" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand stage" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand stage" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand show" -l by -d 'Pick the version with the best score of this metric (as `@best:METRIC`)' -r
complete -c reg -n "__fish_reg_using_subcommand show" -l mode -d 'Whether lower (min) or higher (max) scores are better (default: the callback\'s mode)' -r -f -a "min\t'Lower is better'
max\t'Higher is better'"
complete -c reg -n "__fish_reg_using_subcommand show" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand show" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand show" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand show" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reg -n "__fish_reg_using_subcommand cat" -l range -d 'START:LEN, in bytes (repeatable; written in the order given; default: the whole file)' -r
complete -c reg -n "__fish_reg_using_subcommand cat" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand cat" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand cat" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand cat" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand locate" -l tensors -d 'Only the tensors (safetensors export names) this glob matches (repeatable)' -r
complete -c reg -n "__fish_reg_using_subcommand locate" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand locate" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand locate" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand locate" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand locate" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand log" -l remote -d 'A remote from registry.toml (`reg remote ls`), or an s3:// / file:// URL' -r
complete -c reg -n "__fish_reg_using_subcommand log" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand log" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand log" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand log" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand log" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand ls" -l remote -d 'A remote from registry.toml (`reg remote ls`), or an s3:// / file:// URL' -r
complete -c reg -n "__fish_reg_using_subcommand ls" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand ls" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand ls" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand ls" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand ls" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand completions" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand completions" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand completions" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reg -n "__fish_reg_using_subcommand manpage" -l dir -d 'Write `reg.1` and `reg-COMMAND.1` for every command into DIR instead of printing `reg.1`' -r -F
complete -c reg -n "__fish_reg_using_subcommand manpage" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand manpage" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand manpage" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand manpage" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand stats" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand stats" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand stats" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand stats" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reg -n "__fish_reg_using_subcommand diff" -l only -d 'Only this section' -r -f -a "hparams\t'Hyperparameters'
optimizer\t'Optimizer, scheduler and checkpoint-callback settings'
tensors\t'Tensors'
meta\t'Epoch, step, versions, size'"
complete -c reg -n "__fish_reg_using_subcommand diff" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand diff" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand diff" -l stats -d 'For changed tensors: max |diff|, relative L2 change, changed fraction'
complete -c reg -n "__fish_reg_using_subcommand diff" -l all -d 'List every tensor, not a summary of long lists'
complete -c reg -n "__fish_reg_using_subcommand diff" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand diff" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reg -n "__fish_reg_using_subcommand verify" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand verify" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand verify" -l full -d 'Also re-hash every blob and re-assemble every version'
complete -c reg -n "__fish_reg_using_subcommand verify" -l rebuild-index -d 'Rebuild a lost or corrupt index from the manifest blobs'
complete -c reg -n "__fish_reg_using_subcommand verify" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand verify" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand verify" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand rm" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand rm" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand rm" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand rm" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand deltas" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand deltas" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand deltas" -l background -d 'Started by a push: never create the registry (it may have been removed since)'
complete -c reg -n "__fish_reg_using_subcommand deltas" -l queued -d 'Only what pushes left for the background job (re-encoding and retention), waiting for a job that runs: when it returns, every push\'s background work is done'
complete -c reg -n "__fish_reg_using_subcommand deltas" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand deltas" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand deltas" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand gc" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand gc" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand gc" -l dry-run -d 'Only report what would be freed, and why the rest is kept'
complete -c reg -n "__fish_reg_using_subcommand gc" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand gc" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand gc" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand prune" -l keep-last -d 'Keep the newest N versions' -r
complete -c reg -n "__fish_reg_using_subcommand prune" -l keep-best -d 'Keep the N versions with the best monitored score' -r
complete -c reg -n "__fish_reg_using_subcommand prune" -l keep-optimizer-last -d 'Drop optimizer and scheduler state from all but the newest N versions (they keep their weights and pull as weights-only files)' -r
complete -c reg -n "__fish_reg_using_subcommand prune" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand prune" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand prune" -l keep-tagged -d 'Keep tagged versions'
complete -c reg -n "__fish_reg_using_subcommand prune" -l dry-run -d 'Only report'
complete -c reg -n "__fish_reg_using_subcommand prune" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand prune" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand prune" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand bench; and not __fish_seen_subcommand_from run compress generate help" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand bench; and not __fish_seen_subcommand_from run compress generate help" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand bench; and not __fish_seen_subcommand_from run compress generate help" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand bench; and not __fish_seen_subcommand_from run compress generate help" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand bench; and not __fish_seen_subcommand_from run compress generate help" -f -a "run" -d 'Generate a run and time cp, push, re-push, next-epoch push, pull and diff'
complete -c reg -n "__fish_reg_using_subcommand bench; and not __fish_seen_subcommand_from run compress generate help" -f -a "compress" -d 'Stored bytes of NAME\'s versions by tensor role (weights, frozen, exp_avg, exp_avg_sq, momentum, other, skeleton) against the order-0 entropy bound of how each is stored (byte planes; XOR with the parent for deltas): what is left to today\'s representation'
complete -c reg -n "__fish_reg_using_subcommand bench; and not __fish_seen_subcommand_from run compress generate help" -f -a "generate" -d 'Write one epoch of a generated Lightning-style run to FILE'
complete -c reg -n "__fish_reg_using_subcommand bench; and not __fish_seen_subcommand_from run compress generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from run" -l size -d 'Size of each checkpoint (e.g. 2G, 512M)' -r
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from run" -l epochs -d 'Number of epochs to generate (at least 2)' -r
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from run" -l dir -d 'Directory to work in (its disk is the one measured)' -r -F
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from run" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from run" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from run" -l keep -d 'Keep the generated files and registry'
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from compress" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from compress" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from compress" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from compress" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from compress" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from generate" -l size -d 'Approximate file size (e.g. 4.5G)' -r
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from generate" -l epoch -d 'Epoch number (frozen layers stay, the rest drift)' -r
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from generate" -l layers -d 'Weight matrices (default 8); with --frozen equal to it the file is one storage per layer and no optimizer state' -r
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from generate" -l frozen -d 'Frozen weight matrices (default 2)' -r
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from generate" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from generate" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from generate" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from generate" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "run" -d 'Generate a run and time cp, push, re-push, next-epoch push, pull and diff'
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "compress" -d 'Stored bytes of NAME\'s versions by tensor role (weights, frozen, exp_avg, exp_avg_sq, momentum, other, skeleton) against the order-0 entropy bound of how each is stored (byte planes; XOR with the parent for deltas): what is left to today\'s representation'
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "generate" -d 'Write one epoch of a generated Lightning-style run to FILE'
complete -c reg -n "__fish_reg_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c reg -n "__fish_reg_using_subcommand tag" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand tag" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand tag" -s f -l force -d 'Move the tag if it exists'
complete -c reg -n "__fish_reg_using_subcommand tag" -s d -l delete -d 'Delete the tag NAME@TAG'
complete -c reg -n "__fish_reg_using_subcommand tag" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand tag" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand remote; and not __fish_seen_subcommand_from add ls rm help" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand remote; and not __fish_seen_subcommand_from add ls rm help" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand remote; and not __fish_seen_subcommand_from add ls rm help" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand remote; and not __fish_seen_subcommand_from add ls rm help" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand remote; and not __fish_seen_subcommand_from add ls rm help" -f -a "add" -d 'Add a remote to registry.toml (credentials come from AWS_* environment variables)'
complete -c reg -n "__fish_reg_using_subcommand remote; and not __fish_seen_subcommand_from add ls rm help" -f -a "ls" -d 'List remotes'
complete -c reg -n "__fish_reg_using_subcommand remote; and not __fish_seen_subcommand_from add ls rm help" -f -a "rm" -d 'Remove a remote from registry.toml (its data stays where it is)'
complete -c reg -n "__fish_reg_using_subcommand remote; and not __fish_seen_subcommand_from add ls rm help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from add" -l endpoint -d 'S3 endpoint of an S3-compatible server (MinIO, Garage, R2 ...)' -r
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from add" -l region -d 'S3 region' -r
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from add" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from add" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from add" -l allow-http -d 'Allow a plain-http endpoint'
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from add" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from ls" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from ls" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from ls" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from ls" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from rm" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from rm" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from rm" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from rm" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a remote to registry.toml (credentials come from AWS_* environment variables)'
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List remotes'
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from help" -f -a "rm" -d 'Remove a remote from registry.toml (its data stays where it is)'
complete -c reg -n "__fish_reg_using_subcommand remote; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c reg -n "__fish_reg_using_subcommand sync; and not __fish_seen_subcommand_from push pull help" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand sync; and not __fish_seen_subcommand_from push pull help" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand sync; and not __fish_seen_subcommand_from push pull help" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand sync; and not __fish_seen_subcommand_from push pull help" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand sync; and not __fish_seen_subcommand_from push pull help" -f -a "push" -d 'Upload local versions the remote lacks (all, one model, or one version)'
complete -c reg -n "__fish_reg_using_subcommand sync; and not __fish_seen_subcommand_from push pull help" -f -a "pull" -d 'Download a remote version (REF as the remote numbers it) into the registry'
complete -c reg -n "__fish_reg_using_subcommand sync; and not __fish_seen_subcommand_from push pull help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from push" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from push" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from push" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from push" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from push" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from pull" -l by -d 'Pick the version with the best score of this metric (as `@best:METRIC`)' -r
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from pull" -l mode -d 'Whether lower (min) or higher (max) scores are better (default: the callback\'s mode)' -r -f -a "min\t'Lower is better'
max\t'Higher is better'"
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from pull" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from pull" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from pull" -l json -d 'Print JSON instead of text'
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from pull" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from pull" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from help" -f -a "push" -d 'Upload local versions the remote lacks (all, one model, or one version)'
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from help" -f -a "pull" -d 'Download a remote version (REF as the remote numbers it) into the registry'
complete -c reg -n "__fish_reg_using_subcommand sync; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c reg -n "__fish_reg_using_subcommand serve" -l bind -d 'Address to listen on; any but loopback lets everyone who can reach it read the registry' -r
complete -c reg -n "__fish_reg_using_subcommand serve" -l port -d 'Port; 0 takes a free one (the address is printed on stdout)' -r
complete -c reg -n "__fish_reg_using_subcommand serve" -l allow-host -d 'Also answer requests addressed to NAME (or NAME:PORT), e.g. the name of a proxy in front; repeatable. On loopback only localhost, 127.0.0.1 and [::1] are answered otherwise (against DNS rebinding); on another address, naming any limits it to those names' -r
complete -c reg -n "__fish_reg_using_subcommand serve" -l registry -d 'Registry directory (overrides REG_HOME and registry.toml)' -r -F
complete -c reg -n "__fish_reg_using_subcommand serve" -l wait-timeout -d 'Give up waiting for another reg process after SECS seconds (default: wait; waiting is said once on stderr)' -r
complete -c reg -n "__fish_reg_using_subcommand serve" -s q -l quiet -d 'Print only errors'
complete -c reg -n "__fish_reg_using_subcommand serve" -s h -l help -d 'Print help'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "init" -d 'Create a registry (optional: every command creates one on first use)'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "push" -d 'Store a checkpoint file as a new version'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "pull" -d 'Write a version back to a file, byte for byte'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "stage" -d 'Stream one file of a staging session from stdin, its tensor chunks straight into blobs (the DCP writer\'s ranks; `reg push --staged` makes the version)'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "show" -d 'Describe one version: metadata, optimizer, tensors'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "cat" -d 'Write byte ranges of one file of a version to stdout, reading only the blobs they overlap'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "locate" -d 'Where a version\'s tensors lie on disk as they are, for a loader that maps them'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "log" -d 'List the versions of a model'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "ls" -d 'List models'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "manpage" -d 'Print the man page (roff), or write one page per command into DIR'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "stats" -d 'Registry size and deduplication numbers'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "diff" -d 'Show what changed between two versions (of one model or of two)'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "verify" -d 'Check versions against the blob store (exit 2 when damage is found)'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "rm" -d 'Remove a version (its blobs are freed by `reg gc`)'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "deltas" -d 'Store older versions as deltas against the newer ones (push starts this in the background after each version it adds)'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "gc" -d 'Delete blobs no version needs'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "prune" -d 'Remove old versions of a model, keeping the newest, best and tagged'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "bench" -d 'Measure push, pull and diff against cp on a generated training run'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "tag" -d 'Tag a version, or delete a tag with -d NAME@TAG'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "remote" -d 'Manage remotes (S3-compatible object stores or shared directories)'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "sync" -d 'Transfer versions between the registry and a remote'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "serve" -d 'Serve a read-only web view of the registry: pages, JSON, downloads'
complete -c reg -n "__fish_reg_using_subcommand help; and not __fish_seen_subcommand_from init push pull stage show cat locate log ls completions manpage stats diff verify rm deltas gc prune bench tag remote sync serve help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c reg -n "__fish_reg_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "run" -d 'Generate a run and time cp, push, re-push, next-epoch push, pull and diff'
complete -c reg -n "__fish_reg_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "compress" -d 'Stored bytes of NAME\'s versions by tensor role (weights, frozen, exp_avg, exp_avg_sq, momentum, other, skeleton) against the order-0 entropy bound of how each is stored (byte planes; XOR with the parent for deltas): what is left to today\'s representation'
complete -c reg -n "__fish_reg_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "generate" -d 'Write one epoch of a generated Lightning-style run to FILE'
complete -c reg -n "__fish_reg_using_subcommand help; and __fish_seen_subcommand_from remote" -f -a "add" -d 'Add a remote to registry.toml (credentials come from AWS_* environment variables)'
complete -c reg -n "__fish_reg_using_subcommand help; and __fish_seen_subcommand_from remote" -f -a "ls" -d 'List remotes'
complete -c reg -n "__fish_reg_using_subcommand help; and __fish_seen_subcommand_from remote" -f -a "rm" -d 'Remove a remote from registry.toml (its data stays where it is)'
complete -c reg -n "__fish_reg_using_subcommand help; and __fish_seen_subcommand_from sync" -f -a "push" -d 'Upload local versions the remote lacks (all, one model, or one version)'
complete -c reg -n "__fish_reg_using_subcommand help; and __fish_seen_subcommand_from sync" -f -a "pull" -d 'Download a remote version (REF as the remote numbers it) into the registry'
