// The OpenAPI description of the HTTP API: the one copy in the repository. `GET /openapi.json`
// serves it as it stands here, and OpenAPITests checks it against the routes the API registers
// and against a live `continuum serve` (with schemathesis). Edit the JSON between the quotes:
// it is a raw string, so it is exactly what is served.

extension ContinuumAPI {
    /// The OpenAPI 3.1 description of the JSON API, the health routes and `/metrics`, as
    /// `GET /openapi.json` serves it: every route with its parameters, bodies, security and
    /// every status it answers with. Paths are relative to where the routes are mounted; the
    /// dashboard's HTML pages are not described.
    public static let openAPIDescription = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "Continuum HTTP API",
    "version": "1",
    "summary": "Start durable workflows, send them events, inspect their histories and steer them.",
    "description": "The JSON API `continuum serve` serves, and `ContinuumAPI` mounts in an application of your own (paths are relative to where it is mounted).\n\nEvery request to `/v1/workflows…` passes the same checks in the same order: the body size (`413 bodyTooLarge`), then who is asking (`401 unauthorized`: an `Authorization: Bearer` token when the server has tokens; for an event delivery a Standard Webhooks signature does instead), then, for a write, whether a browser sent it from another site (`403 crossSiteRequest`), then ids, names and JSON (`400`); only then does it reach the runtime. A server without tokens and webhook secrets asks for no authentication (it should listen on loopback only).\n\nErrors are JSON `{\"error\": {\"code\": \"unknownWorkflow\", \"message\": \"…\"}}`: clients branch on the stable `code`, never on the message. A refused request changes nothing.\n\nPayloads (workflow inputs, results, event payloads) are JSON in requests and are returned as their exact JSON text, in a string, so what was stored is what is returned byte for byte."
  },
  "tags": [
    { "name": "workflows", "description": "The JSON API: start, signal, inspect and steer workflows." },
    { "name": "operations", "description": "Probes, metrics and this description; no token needed." }
  ],
  "security": [{ "bearerAuth": [] }],
  "paths": {
    "/v1/schedules": {
      "get": {
        "operationId": "listSchedules",
        "tags": ["schedules"],
        "summary": "Every schedule, with its next fire times",
        "responses": {
          "200": { "description": "The schedules, by name.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ScheduleList" } } } },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" }
        }
      }
    },
    "/v1/schedules/{name}": {
      "parameters": [
        { "name": "name", "in": "path", "required": true, "description": "The schedule's name.", "schema": { "$ref": "#/components/schemas/Name" } }
      ],
      "get": {
        "operationId": "getSchedule",
        "tags": ["schedules"],
        "summary": "One schedule",
        "responses": {
          "200": { "description": "The schedule.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Schedule" } } } },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" }
        }
      },
      "put": {
        "operationId": "putSchedule",
        "tags": ["schedules"],
        "summary": "Create or replace a schedule",
        "description": "Checked before anything is stored: the cron expression, the time zone, the workflow type, and that the input decodes as its input. Each slot starts its workflow once, under the id `<name>@<slot time>`, across restarts.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ScheduleRequest" } } } },
        "responses": {
          "200": { "description": "The schedule as it stands.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Schedule" } } } },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/Forbidden" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "413": { "$ref": "#/components/responses/ContentTooLarge" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" }
        }
      },
      "delete": {
        "operationId": "deleteSchedule",
        "tags": ["schedules"],
        "summary": "Delete a schedule",
        "description": "No slot starts a workflow any more; the workflows it started go on.",
        "responses": {
          "204": { "description": "Deleted." },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/Forbidden" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" }
        }
      }
    },
    "/v1/workflows": {
      "get": {
        "operationId": "listWorkflows",
        "tags": ["workflows"],
        "summary": "A page of workflows, oldest first",
        "parameters": [
          {
            "name": "status",
            "in": "query",
            "description": "Only workflows with this status.",
            "schema": { "$ref": "#/components/schemas/WorkflowStatus" }
          },
          {
            "name": "after",
            "in": "query",
            "description": "The `next` of the previous page; absent for the first page.",
            "schema": { "type": "string", "minLength": 1 }
          },
          {
            "name": "limit",
            "in": "query",
            "description": "The most workflows on the page (default 100).",
            "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }
          }
        ],
        "responses": {
          "200": {
            "description": "The page.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/WorkflowList" } } }
          },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "413": { "$ref": "#/components/responses/ContentTooLarge" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" }
        }
      }
    },
    "/v1/workflows/{id}": {
      "post": {
        "operationId": "startWorkflow",
        "tags": ["workflows"],
        "summary": "Start a workflow",
        "description": "Starts a workflow of the registered type named in the path, with the body as its input. Starting the same id with the same input again gives the same run (`200`, `created: false`); the same id with another type or input is `409 workflowIDConflict`.\n\nThe path's segment is the workflow **type** here (the router has one parameter name per position); the new workflow's id is the query parameter `id`.",
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "description": "The name of a registered workflow type, such as `purchase-approval`.",
            "schema": { "$ref": "#/components/schemas/Name" },
            "example": "purchase-approval"
          },
          {
            "name": "id",
            "in": "query",
            "description": "The new workflow's id (default: a random UUID).",
            "schema": { "$ref": "#/components/schemas/Name" },
            "example": "po-1"
          },
          {
            "name": "timeout",
            "in": "query",
            "description": "The workflow's deadline, in seconds from now: when it passes first, the workflow's waits throw `timedOut` (it may compensate) and it ends `failed` with that code. Default: none.",
            "schema": { "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1000000000 }
          },
          {
            "name": "queue",
            "in": "query",
            "description": "A named queue to run the workflow on: its body runs only while it holds one of the queue's slots (the server's configured limits). Recorded with the start.",
            "schema": { "$ref": "#/components/schemas/Name" }
          },
          {
            "name": "partition",
            "in": "query",
            "description": "With `queue`: the partition key the queue's per-partition limit counts by.",
            "schema": { "$ref": "#/components/schemas/Name" }
          },
          {
            "name": "priority",
            "in": "query",
            "description": "With `queue`: higher runs first (default 0).",
            "schema": { "type": "integer", "minimum": -1000000, "maximum": 1000000 }
          }
        ],
        "requestBody": {
          "description": "The workflow's input, any JSON value the type's `Input` decodes from; no body means `null`.",
          "content": {
            "application/json": {
              "schema": {},
              "example": { "item": "laptop", "amount": 1200 }
            }
          }
        },
        "responses": {
          "200": {
            "description": "A workflow with this id, type and input existed already: nothing was started.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/StartReceipt" } } }
          },
          "201": {
            "description": "The workflow was started.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/StartReceipt" } } },
            "links": {
              "getWorkflow": { "operationId": "getWorkflow", "parameters": { "path.id": "$response.body#/id" } },
              "getHistory": { "operationId": "getHistory", "parameters": { "path.id": "$response.body#/id" } },
              "sendEvent": { "operationId": "sendEvent", "parameters": { "path.id": "$response.body#/id" } },
              "sendUpdate": { "operationId": "sendUpdate", "parameters": { "path.id": "$response.body#/id" } },
              "queryWorkflow": { "operationId": "queryWorkflow", "parameters": { "path.id": "$response.body#/id" } },
              "cancelWorkflow": { "operationId": "cancelWorkflow", "parameters": { "path.id": "$response.body#/id" } },
              "resumeWorkflow": { "operationId": "resumeWorkflow", "parameters": { "path.id": "$response.body#/id" } },
              "resetWorkflow": { "operationId": "resetWorkflow", "parameters": { "path.id": "$response.body#/id" } },
              "forkWorkflow": { "operationId": "forkWorkflow", "parameters": { "path.id": "$response.body#/id" } }
            }
          },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/Forbidden" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "413": { "$ref": "#/components/responses/ContentTooLarge" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" },
          "507": { "$ref": "#/components/responses/InsufficientStorage" }
        }
      },
      "get": {
        "operationId": "getWorkflow",
        "tags": ["workflows"],
        "summary": "A workflow's status, and its outcome once finished",
        "parameters": [{ "$ref": "#/components/parameters/WorkflowID" }],
        "responses": {
          "200": {
            "description": "The workflow: its status, its result, error or cancellation reason once finished, its suspension while suspended.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/WorkflowInfo" } } }
          },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "413": { "$ref": "#/components/responses/ContentTooLarge" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" }
        }
      }
    },
    "/v1/workflows/{id}/history": {
      "get": {
        "operationId": "getHistory",
        "tags": ["workflows"],
        "summary": "Every event of a workflow, as `continuum export` writes it",
        "description": "The history file `WorkflowHistory(contentsOf:)` reads back and the replayer checks new code against.",
        "parameters": [
          { "$ref": "#/components/parameters/WorkflowID" },
          {
            "name": "includeSuperseded",
            "in": "query",
            "description": "`false` leaves out the events a reset superseded (default `true`: every stored event).",
            "schema": { "type": "boolean", "default": true }
          }
        ],
        "responses": {
          "200": {
            "description": "The history.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/WorkflowHistory" } } }
          },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "413": { "$ref": "#/components/responses/ContentTooLarge" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" }
        }
      }
    },
    "/v1/workflows/{id}/updates/{name}": {
      "post": {
        "operationId": "sendUpdate",
        "tags": ["workflows"],
        "summary": "Send a workflow an update and get its reply",
        "description": "The workflow's type validates the update (`422 updateRejected` when it refuses, nothing recorded), the update is recorded, and the answer is the reply the workflow's body gives (`ctx.handleUpdate`), as JSON. When no reply comes within `timeout` the answer is `504 timedOut` and the update stays recorded: send it again with the same `Idempotency-Key` to get the reply once it has come.",
        "parameters": [
          { "$ref": "#/components/parameters/WorkflowID" },
          {
            "name": "name",
            "in": "path",
            "required": true,
            "description": "The update's name, as the workflow handles it.",
            "schema": { "$ref": "#/components/schemas/Name" }
          },
          {
            "name": "Idempotency-Key",
            "in": "header",
            "description": "The update's id: the same key again records nothing new and answers the same reply. Default: a new id.",
            "schema": { "$ref": "#/components/schemas/Name" }
          },
          {
            "name": "timeout",
            "in": "query",
            "description": "How long to wait for the reply, in seconds (default 30).",
            "schema": { "type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": 30 }
          }
        ],
        "requestBody": {
          "description": "The update's payload, any JSON value; no body means `null`.",
          "content": { "application/json": { "schema": {} } }
        },
        "responses": {
          "200": {
            "description": "The workflow's reply, the JSON its body returned for the update.",
            "content": { "application/json": { "schema": {} } }
          },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/Forbidden" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "413": { "$ref": "#/components/responses/ContentTooLarge" },
          "422": { "$ref": "#/components/responses/UnprocessableContent" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" },
          "504": { "$ref": "#/components/responses/GatewayTimeout" },
          "507": { "$ref": "#/components/responses/InsufficientStorage" }
        }
      }
    },
    "/v1/workflows/{id}/queries/{name}": {
      "get": {
        "operationId": "queryWorkflow",
        "tags": ["workflows"],
        "summary": "The latest value a workflow published under a name",
        "description": "What the workflow last published with `ctx.publish`, as JSON. Appends nothing: a workflow this server runs is read in memory; any other (parked, finished, run elsewhere) is replayed as a dry run.",
        "parameters": [
          { "$ref": "#/components/parameters/WorkflowID" },
          {
            "name": "name",
            "in": "path",
            "required": true,
            "description": "The name the workflow published under.",
            "schema": { "$ref": "#/components/schemas/Name" }
          }
        ],
        "responses": {
          "200": {
            "description": "The published value.",
            "content": { "application/json": { "schema": {} } }
          },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "413": { "$ref": "#/components/responses/ContentTooLarge" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" }
        }
      }
    },
    "/v1/workflows/{id}/events/{name}": {
      "post": {
        "operationId": "sendEvent",
        "tags": ["workflows"],
        "summary": "Deliver an event to a workflow",
        "description": "Appends the event to the workflow's history; a wait for that name consumes it (events wait in history until one does). A key (`Idempotency-Key`, else `webhook-id`) deduplicates: the same key again returns the first receipt (`200`, `duplicate: true`); the same key for another event is `409 dedupKeyConflict`.\n\nWith webhook secrets configured, a delivery signed in the Standard Webhooks format is accepted without a bearer token, and its signed `webhook-id` deduplicates it; a signature that is present but refused is `401 badSignature`.",
        "security": [{ "bearerAuth": [] }, { "webhookSignature": [] }],
        "parameters": [
          { "$ref": "#/components/parameters/WorkflowID" },
          {
            "name": "name",
            "in": "path",
            "required": true,
            "description": "The event's name, as the workflow waits for it.",
            "schema": { "$ref": "#/components/schemas/Name" },
            "example": "approve"
          },
          {
            "name": "Idempotency-Key",
            "in": "header",
            "description": "Deduplicates the delivery: 1 to 256 bytes without control characters. Ignored for a signed delivery, which its `webhook-id` deduplicates.",
            "schema": { "$ref": "#/components/schemas/Name" },
            "example": "approval-1"
          },
          {
            "name": "webhook-id",
            "in": "header",
            "description": "Standard Webhooks: the message's id. Deduplicates like `Idempotency-Key` when that is absent.",
            "schema": { "$ref": "#/components/schemas/Name" }
          },
          {
            "name": "webhook-timestamp",
            "in": "header",
            "description": "Standard Webhooks: when the delivery was signed, in Unix seconds; accepted within five minutes of the server's time.",
            "schema": { "type": "string" }
          }
        ],
        "requestBody": {
          "description": "The event's payload, any JSON value; no body means `null`.",
          "content": {
            "application/json": {
              "schema": {},
              "example": { "approved": true, "by": "ops" }
            }
          }
        },
        "responses": {
          "200": {
            "description": "The key was used before for this event: nothing was appended; this is the first receipt.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/EventReceipt" } } }
          },
          "202": {
            "description": "The event was appended to the workflow's history.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/EventReceipt" } } }
          },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/Forbidden" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "413": { "$ref": "#/components/responses/ContentTooLarge" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" },
          "507": { "$ref": "#/components/responses/InsufficientStorage" }
        }
      }
    },
    "/v1/workflows/{id}/cancel": {
      "post": {
        "operationId": "cancelWorkflow",
        "tags": ["workflows"],
        "summary": "Ask a workflow to stop",
        "description": "Records the request with who asked and why; the workflow's waits end and it may run compensating steps before it ends as `cancelled`. A suspended workflow ends at once.",
        "parameters": [{ "$ref": "#/components/parameters/WorkflowID" }],
        "requestBody": {
          "description": "Optional: who asks and why.",
          "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CancelRequest" } } }
        },
        "responses": {
          "202": {
            "description": "The request is committed; the workflow ends once its body finishes.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CancelReceipt" } } }
          },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/Forbidden" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "413": { "$ref": "#/components/responses/ContentTooLarge" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" },
          "507": { "$ref": "#/components/responses/InsufficientStorage" }
        }
      }
    },
    "/v1/workflows/{id}/resume": {
      "post": {
        "operationId": "resumeWorkflow",
        "tags": ["workflows"],
        "summary": "Let a suspended workflow run again with the code deployed now",
        "description": "Only a suspended workflow can be resumed (else `409 notSuspended`). The resumption is recorded with who asked and why.",
        "parameters": [{ "$ref": "#/components/parameters/WorkflowID" }],
        "requestBody": {
          "description": "Optional: who asks and why.",
          "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ResumeRequest" } } }
        },
        "responses": {
          "202": {
            "description": "The resumption is committed to history.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ActionReceipt" } } }
          },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/Forbidden" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "413": { "$ref": "#/components/responses/ContentTooLarge" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" },
          "507": { "$ref": "#/components/responses/InsufficientStorage" }
        }
      }
    },
    "/v1/workflows/{id}/reset": {
      "post": {
        "operationId": "resetWorkflow",
        "tags": ["workflows"],
        "summary": "Rerun a workflow from a step or an event",
        "description": "Every event from the target on is superseded (kept, never deleted) but for external events, which are delivered again, and the code deployed now runs from there. Give exactly one of `toStep` (with `occurrence` for a repeated step) and `toEvent`.",
        "parameters": [{ "$ref": "#/components/parameters/WorkflowID" }],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": { "$ref": "#/components/schemas/ResetRequest" },
              "example": { "toStep": "file-request", "reason": "the step was renamed" }
            }
          }
        },
        "responses": {
          "202": {
            "description": "The reset is committed to history.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ActionReceipt" } } }
          },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/Forbidden" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "413": { "$ref": "#/components/responses/ContentTooLarge" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" },
          "507": { "$ref": "#/components/responses/InsufficientStorage" }
        }
      }
    },
    "/v1/workflows/{id}/fork": {
      "post": {
        "operationId": "forkWorkflow",
        "tags": ["workflows"],
        "summary": "Start a new workflow from a copy of this one's history up to a step",
        "description": "The new workflow (`as`) gets the events before the step, and runs from there with the code deployed now.",
        "parameters": [{ "$ref": "#/components/parameters/WorkflowID" }],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": { "$ref": "#/components/schemas/ForkRequest" },
              "example": { "toStep": "file-request", "as": "po-copy", "by": "bob" }
            }
          }
        },
        "responses": {
          "201": {
            "description": "The new workflow was started.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/StartReceipt" } } }
          },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/Forbidden" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "413": { "$ref": "#/components/responses/ContentTooLarge" },
          "500": { "$ref": "#/components/responses/ServerError" },
          "503": { "$ref": "#/components/responses/ServiceUnavailable" },
          "507": { "$ref": "#/components/responses/InsufficientStorage" }
        }
      }
    },
    "/healthz": {
      "get": {
        "operationId": "getHealth",
        "tags": ["operations"],
        "summary": "Readiness probe",
        "security": [],
        "responses": {
          "200": {
            "description": "The runtime is ready.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/HealthStatus" } } }
          },
          "503": {
            "description": "The runtime is still starting.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/HealthStatus" } } }
          }
        }
      }
    },
    "/metrics": {
      "get": {
        "operationId": "getMetrics",
        "tags": ["operations"],
        "summary": "Prometheus metrics",
        "description": "Served when a Prometheus registry is configured (`continuum serve` configures one); absent otherwise.",
        "security": [],
        "responses": {
          "200": {
            "description": "The metrics, in the Prometheus text format.",
            "content": { "text/plain": { "schema": { "type": "string" } } }
          }
        }
      }
    },
    "/openapi.json": {
      "get": {
        "operationId": "getOpenAPI",
        "tags": ["operations"],
        "summary": "This description",
        "security": [],
        "responses": {
          "200": {
            "description": "The OpenAPI description of this API.",
            "content": { "application/json": { "schema": { "type": "object" } } }
          }
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the server's tokens (`continuum serve --token`, or `CONTINUUM_TOKENS`). A server with no tokens and no webhook secrets needs none."
      },
      "webhookSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "webhook-signature",
        "description": "Standard Webhooks: space-separated `v1,<base64 HMAC-SHA256 of \"webhook-id.webhook-timestamp.body\">` with one of the server's webhook secrets (`continuum serve --webhook-secret`); needs the `webhook-id` and `webhook-timestamp` headers too. Accepted for event deliveries only."
      }
    },
    "parameters": {
      "WorkflowID": {
        "name": "id",
        "in": "path",
        "required": true,
        "description": "The workflow's id.",
        "schema": { "$ref": "#/components/schemas/Name" },
        "example": "po-1"
      }
    },
    "responses": {
      "BadRequest": {
        "description": "`invalidArgument`: an id, name, query parameter or body field is not acceptable; `invalidJSON`: a body that must be JSON is not; `payloadCoding`: the body does not decode as the workflow's input.",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
      },
      "Unauthorized": {
        "description": "`unauthorized`: no accepted bearer token (nor, for an event, a webhook signature); `badSignature`: a webhook signature was present and refused.",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
      },
      "Forbidden": {
        "description": "`crossSiteRequest`: a browser sent this write from a page of another site (`Sec-Fetch-Site` or `Origin`).",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
      },
      "NotFound": {
        "description": "`unknownWorkflow`: no workflow has the id; `unknownWorkflowType`: no workflow type has the name; `unknownQuery`: the workflow published nothing under the name (yet).",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
      },
      "Conflict": {
        "description": "The workflow is not in a state that allows the request: `workflowFinished`, `workflowIDConflict` (the id is taken by another type or input), `dedupKeyConflict`, `notSuspended`, `suspended`, `nondeterminism`, `codeChanged`, `ambiguousStep`, `corruptedData`; or `webhookReplayed` (a signed `webhook-id` already went to another workflow or event).",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
      },
      "ContentTooLarge": {
        "description": "`bodyTooLarge`: the body is over the server's limit (256 KiB by default); `payloadTooLarge`: the payload is over the runtime's limit.",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
      },
      "ServerError": {
        "description": "`storageFailure` and other failures of the server itself; the message says what happened.",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
      },
      "ServiceUnavailable": {
        "description": "Try again later, or elsewhere: `notRunning`, `storeClosed` (shutting down), `storeLocked`, `storeUnavailable` (the database is out of reach), `ownershipLost` (another process took the workflow over), `readOnly` (this server's store takes no writes), `webhookLimit`.",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
      },
      "UnprocessableContent": {
        "description": "`updateRejected`: the workflow refused the update (its type's validation, or its body).",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
      },
      "GatewayTimeout": {
        "description": "`timedOut`: no reply came in time; the update stays recorded, and the same `Idempotency-Key` gets its reply later.",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
      },
      "InsufficientStorage": {
        "description": "`storageFull`: the store's map or disk is full.",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
      }
    },
    "schemas": {
      "Name": {
        "type": "string",
        "minLength": 1,
        "pattern": "^[^\\x00-\\x1F\\x7F-\\x9F]+$",
        "description": "An id or name: UTF-8 without control characters, of 1 to the store's limit of bytes (on LMDB and PostgreSQL 511 for a workflow id, 256 for any other name or key); else `400 invalidArgument`."
      },
      "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
          "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
              "code": { "type": "string", "description": "A stable code to branch on, such as `unknownWorkflow`.", "examples": ["unknownWorkflow"] },
              "message": { "type": "string", "description": "What happened and what to do about it, for people." }
            }
          }
        }
      },
      "WorkflowStatus": {
        "type": "string",
        "enum": ["running", "completed", "failed", "suspended", "cancelled"],
        "description": "`running` (started and not finished), `completed`, `failed`, `suspended` (needs an operator: resume, reset or cancel it), `cancelled`."
      },
      "StartReceipt": {
        "type": "object",
        "required": ["id", "type", "created"],
        "properties": {
          "id": { "type": "string", "description": "The workflow's id." },
          "type": { "type": "string", "description": "Its registered type name." },
          "created": { "type": "boolean", "description": "Whether this request created it (`false`: it existed, started with the same input)." }
        }
      },
      "EventReceipt": {
        "type": "object",
        "required": ["workflowID", "sequence", "duplicate"],
        "properties": {
          "workflowID": { "type": "string" },
          "sequence": { "$ref": "#/components/schemas/UInt32", "description": "The event's position in the workflow's history." },
          "duplicate": { "type": "boolean", "description": "The key was used before: nothing was appended and this is the first receipt." }
        }
      },
      "WorkflowInfo": {
        "type": "object",
        "required": ["id", "type", "status", "createdAt", "updatedAt"],
        "properties": {
          "id": { "type": "string" },
          "type": { "type": "string" },
          "status": { "$ref": "#/components/schemas/WorkflowStatus" },
          "createdAt": { "type": "string", "format": "date-time", "description": "When it was started (`2026-11-25T16:51:03.123Z`)." },
          "updatedAt": { "type": "string", "format": "date-time", "description": "When its status last changed." },
          "result": { "type": "string", "description": "Once completed (single workflow only): its output, as JSON text." },
          "error": { "$ref": "#/components/schemas/FailureRecord", "description": "Once failed (single workflow only): the error its body threw." },
          "reason": { "type": "string", "description": "Once cancelled (single workflow only): the reason given." },
          "suspension": { "$ref": "#/components/schemas/SuspensionRecord", "description": "While suspended (single workflow only): why." }
        }
      },
      "WorkflowList": {
        "type": "object",
        "required": ["workflows"],
        "properties": {
          "workflows": { "type": "array", "items": { "$ref": "#/components/schemas/WorkflowInfo" }, "description": "Oldest first." },
          "next": { "type": "string", "description": "Pass as `after` for the next page; absent on the last page." }
        }
      },
      "HealthStatus": {
        "type": "object",
        "required": ["status"],
        "properties": { "status": { "type": "string", "enum": ["ready", "starting"] } }
      },
      "CancelRequest": {
        "type": "object",
        "properties": {
          "reason": { "type": "string", "description": "Why (default `cancelled over HTTP`)." },
          "by": { "type": "string", "description": "Who asks (default `http`)." }
        }
      },
      "CancelReceipt": {
        "type": "object",
        "required": ["id", "cancelRequested"],
        "properties": {
          "id": { "type": "string" },
          "cancelRequested": { "type": "boolean", "const": true }
        }
      },
      "ResumeRequest": {
        "type": "object",
        "properties": {
          "by": { "$ref": "#/components/schemas/Name", "description": "Who asks (default `http`)." },
          "reason": { "type": "string", "description": "Why (default `resumed over HTTP`); at most 4096 bytes." }
        }
      },
      "ResetRequest": {
        "type": "object",
        "description": "Exactly one of `toStep` and `toEvent`; `occurrence` only with `toStep`.",
        "properties": {
          "toStep": { "$ref": "#/components/schemas/Name", "description": "The step to rerun from." },
          "occurrence": { "$ref": "#/components/schemas/UInt32", "description": "Which call of a step called several times (default 0, the first)." },
          "toEvent": { "$ref": "#/components/schemas/UInt32", "description": "The sequence number of the event to rerun from." },
          "by": { "$ref": "#/components/schemas/Name", "description": "Who asks (default `http`)." },
          "reason": { "type": "string", "description": "Why (default `reset over HTTP`); at most 4096 bytes." }
        },
        "oneOf": [
          { "required": ["toStep"], "not": { "required": ["toEvent"] } },
          { "required": ["toEvent"], "not": { "anyOf": [{ "required": ["toStep"] }, { "required": ["occurrence"] }] } }
        ]
      },
      "ForkRequest": {
        "type": "object",
        "required": ["toStep", "as"],
        "properties": {
          "toStep": { "$ref": "#/components/schemas/Name", "description": "The step the new workflow runs from: it gets the events before it." },
          "occurrence": { "$ref": "#/components/schemas/UInt32", "description": "Which call of a step called several times (default 0)." },
          "as": { "$ref": "#/components/schemas/Name", "description": "The new workflow's id." },
          "by": { "$ref": "#/components/schemas/Name", "description": "Who asks (default `http`)." },
          "reason": { "type": "string", "description": "Why (default `forked over HTTP`); at most 4096 bytes." }
        }
      },
      "ActionReceipt": {
        "type": "object",
        "required": ["id", "action", "by", "reason"],
        "properties": {
          "id": { "type": "string" },
          "action": { "type": "string", "enum": ["resume", "reset"] },
          "by": { "type": "string", "description": "Who asked, as history records it." },
          "reason": { "type": "string", "description": "Why, as history records it." }
        }
      },
      "UInt32": { "type": "integer", "minimum": 0, "maximum": 4294967295 },
      "Int64": { "type": "integer", "minimum": -9223372036854775808, "maximum": 9223372036854775807 },
      "FailureRecord": {
        "type": "object",
        "required": ["type", "message"],
        "properties": {
          "type": { "type": "string", "description": "The error's Swift type." },
          "message": { "type": "string", "description": "The error's description." }
        }
      },
      "StepKey": {
        "type": "object",
        "required": ["name", "occurrence"],
        "properties": {
          "name": { "type": "string" },
          "occurrence": { "$ref": "#/components/schemas/UInt32", "description": "How many steps of the same name came before this one." }
        }
      },
      "StepRecord": {
        "type": "object",
        "required": ["name", "occurrence", "index", "concurrent"],
        "properties": {
          "name": { "type": "string" },
          "occurrence": { "$ref": "#/components/schemas/UInt32" },
          "index": { "$ref": "#/components/schemas/UInt32", "description": "The step's position among the body's step calls." },
          "concurrent": { "type": "boolean", "description": "Whether a child task of the body (`async let`, a task group) called it." },
          "fingerprint": { "type": "string", "description": "The fingerprint of the step's code when it ran, when it had one." }
        }
      },
      "SuspensionRecord": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
          "code": { "type": "string", "description": "The error code that suspended it, such as `nondeterminism`." },
          "message": { "type": "string" },
          "index": { "$ref": "#/components/schemas/UInt32", "description": "The position among the body's calls where the code stopped matching, if it did." },
          "recorded": { "$ref": "#/components/schemas/StepKey", "description": "What history recorded there." },
          "requested": { "$ref": "#/components/schemas/StepKey", "description": "What the code asked for there." },
          "build": { "type": "string", "description": "The build that suspended it, if set." }
        }
      },
      "ActionRecord": {
        "type": "object",
        "required": ["by", "reason"],
        "properties": { "by": { "type": "string" }, "reason": { "type": "string" } }
      },
      "WorkflowHistory": {
        "type": "object",
        "required": ["format", "id", "type", "events"],
        "properties": {
          "format": { "type": "integer", "minimum": 1, "description": "The history file format's version." },
          "id": { "type": "string" },
          "type": { "type": "string" },
          "status": { "$ref": "#/components/schemas/WorkflowStatus" },
          "events": { "type": "array", "items": { "$ref": "#/components/schemas/HistoryEvent" } }
        }
      },
      "HistoryEvent": {
        "description": "One event of a history; `kind` says which, and which fields it has. Payloads are their exact JSON text.",
        "type": "object",
        "required": ["sequence", "timestamp", "time", "kind"],
        "properties": {
          "sequence": { "$ref": "#/components/schemas/UInt32", "description": "The event's position in the history, from 0." },
          "timestamp": { "$ref": "#/components/schemas/Int64", "description": "When it was appended, in nanoseconds since 1970." },
          "time": { "type": "string", "format": "date-time", "description": "The same time for people, to the millisecond; ignored when read." },
          "kind": {
            "type": "string",
            "enum": [
              "workflowStarted", "stepCompleted", "stepFailed", "workflowCompleted", "workflowFailed", "waitStarted", "waitEnded",
              "stepRetrying", "cancelRequested", "workflowCancelled", "eventReceived", "workflowSuspended", "workflowResumed",
              "workflowReset", "workflowForked", "markerRecorded", "startedAsChild", "deadlineSet", "deadlinePassed", "continuedAsNew"
            ]
          }
        },
        "oneOf": [
          {
            "title": "workflowStarted",
            "properties": {
              "kind": { "const": "workflowStarted" },
              "type": { "type": "string" },
              "input": { "type": "string", "description": "The input, as JSON text." },
              "traceContext": { "type": "object", "additionalProperties": { "type": "string" }, "description": "The starter's tracing context (W3C `traceparent`, …)." }
            },
            "required": ["type", "input"]
          },
          {
            "title": "stepCompleted",
            "properties": {
              "kind": { "const": "stepCompleted" },
              "step": { "$ref": "#/components/schemas/StepRecord" },
              "result": { "type": "string", "description": "The step's result, as JSON text." }
            },
            "required": ["step", "result"]
          },
          {
            "title": "stepFailed",
            "properties": {
              "kind": { "const": "stepFailed" },
              "step": { "$ref": "#/components/schemas/StepRecord" },
              "error": { "$ref": "#/components/schemas/FailureRecord" }
            },
            "required": ["step", "error"]
          },
          {
            "title": "workflowCompleted",
            "properties": {
              "kind": { "const": "workflowCompleted" },
              "output": { "type": "string", "description": "The workflow's output, as JSON text." }
            },
            "required": ["output"]
          },
          {
            "title": "workflowFailed",
            "properties": { "kind": { "const": "workflowFailed" }, "error": { "$ref": "#/components/schemas/FailureRecord" } },
            "required": ["error"]
          },
          {
            "title": "waitStarted",
            "properties": {
              "kind": { "const": "waitStarted" },
              "step": { "$ref": "#/components/schemas/StepRecord" },
              "waitsFor": { "type": "string", "enum": ["timer", "event"] },
              "event": { "type": "string", "description": "The event's name, for an event wait." },
              "due": { "$ref": "#/components/schemas/Int64", "description": "When the timer fires or the wait times out, in nanoseconds since 1970; absent for an event wait without timeout." },
              "until": { "type": "string", "format": "date-time", "description": "`due`, for people." }
            },
            "required": ["step", "waitsFor"]
          },
          {
            "title": "waitEnded",
            "properties": {
              "kind": { "const": "waitEnded" },
              "step": { "$ref": "#/components/schemas/StepKey" },
              "outcome": { "type": "string", "enum": ["fired", "received", "timedOut", "cancelled"] },
              "latenessNanoseconds": { "$ref": "#/components/schemas/Int64", "description": "For a timer that fired: how late." },
              "eventSequence": { "$ref": "#/components/schemas/UInt32", "description": "For an event received: the event's sequence number." }
            },
            "required": ["step", "outcome"]
          },
          {
            "title": "stepRetrying",
            "properties": {
              "kind": { "const": "stepRetrying" },
              "step": { "$ref": "#/components/schemas/StepRecord" },
              "attempt": { "$ref": "#/components/schemas/UInt32" },
              "error": { "$ref": "#/components/schemas/FailureRecord" },
              "nextAttemptAt": { "$ref": "#/components/schemas/Int64", "description": "When the next attempt runs, in nanoseconds since 1970." }
            },
            "required": ["step", "attempt", "error", "nextAttemptAt"]
          },
          {
            "title": "cancelRequested",
            "properties": { "kind": { "const": "cancelRequested" }, "reason": { "type": "string" }, "by": { "type": "string" } },
            "required": ["reason"]
          },
          {
            "title": "workflowCancelled",
            "properties": { "kind": { "const": "workflowCancelled" }, "reason": { "type": "string" } },
            "required": ["reason"]
          },
          {
            "title": "eventReceived",
            "properties": {
              "kind": { "const": "eventReceived" },
              "event": { "type": "string" },
              "payload": { "type": "string", "description": "The event's payload, as JSON text." },
              "dedupKey": { "type": "string" }
            },
            "required": ["event", "payload"]
          },
          {
            "title": "workflowSuspended",
            "properties": { "kind": { "const": "workflowSuspended" }, "suspension": { "$ref": "#/components/schemas/SuspensionRecord" } },
            "required": ["suspension"]
          },
          {
            "title": "workflowResumed",
            "properties": { "kind": { "const": "workflowResumed" }, "action": { "$ref": "#/components/schemas/ActionRecord" } },
            "required": ["action"]
          },
          {
            "title": "workflowReset",
            "properties": {
              "kind": { "const": "workflowReset" },
              "toSequence": { "$ref": "#/components/schemas/UInt32", "description": "The event the workflow was reset to." },
              "generation": { "$ref": "#/components/schemas/UInt32", "description": "How many resets so far, this one included." },
              "action": { "$ref": "#/components/schemas/ActionRecord" }
            },
            "required": ["toSequence", "generation", "action"]
          },
          {
            "title": "workflowForked",
            "properties": {
              "kind": { "const": "workflowForked" },
              "from": { "type": "string", "description": "The workflow it was forked from." },
              "eventSequence": { "$ref": "#/components/schemas/UInt32", "description": "The event of that history it was forked at." },
              "action": { "$ref": "#/components/schemas/ActionRecord" }
            },
            "required": ["from", "eventSequence", "action"]
          },
          {
            "title": "markerRecorded",
            "properties": { "kind": { "const": "markerRecorded" }, "marker": { "type": "string", "description": "The version marker's id (`ctx.patched(id)`)." } },
            "required": ["marker"]
          },
          {
            "title": "startedAsChild",
            "properties": {
              "kind": { "const": "startedAsChild" },
              "parent": { "type": "string", "description": "The workflow that started this one as its child." },
              "childKey": { "type": "string", "description": "The child's key among the parent's children." }
            },
            "required": ["parent", "childKey"]
          },
          {
            "title": "deadlineSet",
            "properties": {
              "kind": { "const": "deadlineSet" },
              "due": { "$ref": "#/components/schemas/Int64", "description": "When the workflow must have ended, in nanoseconds since 1970." },
              "until": { "type": "string", "format": "date-time", "description": "`due`, for people." }
            },
            "required": ["due"]
          },
          {
            "title": "deadlinePassed",
            "properties": { "kind": { "const": "deadlinePassed" } }
          },
          {
            "title": "continuedAsNew",
            "properties": {
              "kind": { "const": "continuedAsNew" },
              "input": { "type": "string", "description": "The next run's input, as its JSON text." }
            },
            "required": ["input"]
          }
        ]
      },
      "ScheduleRequest": {
        "type": "object",
        "required": ["cron", "workflow"],
        "properties": {
          "cron": { "type": "string", "description": "5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; ranges, steps, lists, names and @daily-style macros.", "examples": ["0 6 * * *"] },
          "timeZone": { "type": "string", "description": "An IANA time zone for the cron's wall-clock times (default `UTC`).", "examples": ["Europe/Paris"] },
          "workflow": { "type": "string", "description": "The registered workflow type each slot starts." },
          "input": { "description": "The workflow's input (any JSON; default null)." },
          "catchUp": { "type": "string", "enum": ["skip", "latest", "all"], "description": "Which slots missed during downtime run (default `latest`)." },
          "catchUpMax": { "type": "integer", "minimum": 1, "description": "With `all`: the most missed slots that run (default 10)." },
          "overlap": { "type": "string", "enum": ["skip", "allow"], "description": "Whether a slot starts while the previous slot's workflow still runs (default `skip`)." }
        }
      },
      "Schedule": {
        "type": "object",
        "required": ["name", "cron", "timeZone", "workflow", "input", "catchUp", "overlap", "next", "started", "skipped", "workflowID"],
        "properties": {
          "name": { "type": "string" },
          "cron": { "type": "string" },
          "timeZone": { "type": "string" },
          "workflow": { "type": "string" },
          "input": { "type": "string", "description": "The input, as its JSON text." },
          "catchUp": { "type": "string", "enum": ["skip", "latest", "all"] },
          "catchUpMax": { "type": "integer" },
          "overlap": { "type": "string", "enum": ["skip", "allow"] },
          "next": { "type": "array", "items": { "type": "string", "format": "date-time" }, "description": "The next fire times (up to five)." },
          "lastSlot": { "type": "string", "format": "date-time", "description": "The latest slot handled." },
          "started": { "type": "integer", "minimum": 0, "description": "Slots that started a workflow (its id is `<name>@<slot time>`)." },
          "skipped": { "type": "integer", "minimum": 0, "description": "Slots skipped (overlap, or missed past the catch-up policy)." },
          "workflowID": { "type": "string", "description": "The workflow that runs the schedule." }
        }
      },
      "ScheduleList": {
        "type": "object",
        "required": ["schedules"],
        "properties": { "schedules": { "type": "array", "items": { "$ref": "#/components/schemas/Schedule" } } }
      }
    }
  }
}
"""#
}
