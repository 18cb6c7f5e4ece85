// Routing pin sets as plain data. This module imports nothing on purpose: the
// inference tier needs the routing decision without loading any tool handler.
// Precedence is gateway-pinned, then inference-pinned, then the tools service;
// the two sets must stay disjoint (checked by config validation and a test).

/** Tools that must run on the gateway, where the live platform client and node-local audio state live. */
export const GATEWAY_PINNED_TOOLS: ReadonlySet<string> = new Set([
  "create_poll",
  "cross_channel_query",
  "discord_delete_message",
  "discord_edit_message",
  "discord_embed",
  "discord_invite",
  "discord_leave_server",
  "discord_manage_channels",
  "discord_manage_roles",
  "discord_message_reactions",
  "discord_moderation",
  "discord_react",
  "discord_send_dm",
  "discord_server_info",
  "discord_upload_file",
  "discord_webhooks",
  "force_guild_index",
  "get_current_guild_count",
  "get_message_reactions",
  "get_server_diagnostics",
  "get_voice_states",
  "list_server_emojis",
  "music_steering",
  "pause_music",
  "play_music",
  "reset_music_context",
  "resume_music",
  "stop_music",
]);

/** Compound tools that run their own nested LLM loop, so they stay next to the LLM client. */
export const INFERENCE_PINNED_TOOLS: ReadonlySet<string> = new Set([
  "call_subagent",
  "conjure_egregore",
  "extend_tool_loop",
  "gravimetric_telescope",
  "refine_prompt",
  "start_deep_think_task",
  "start_research_task",
]);
